package sagas

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lexigram/events/platform"
)

// encodeStored is the record KVStore and MemoryStore keep: the JSON of
// the instance, without its Revision, which the store keeps beside it.
func encodeStored(in Instance) ([]byte, error) {
	data, err := json.Marshal(in)
	if err != nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"sagas: saga instance %s does not encode: %w: its Data must be valid JSON and its times within the years 0 to 9999", in.ID, err)
	}
	return data, nil
}

// decodeStored decodes the record of instance id. A record of another
// instance, or of none, is as unusable as one that is not JSON.
func decodeStored(id string, data []byte) (Instance, error) {
	var in Instance
	if err := json.Unmarshal(data, &in); err != nil {
		return Instance{}, err
	}
	switch in.ID {
	case id:
		return in, nil
	case "":
		return Instance{}, errors.New("the record has no instance ID")
	}
	return Instance{}, fmt.Errorf("the record is of instance %q", in.ID)
}

// storedType reads the type of a record that does not decode, for its
// CorruptError: "" when even that cannot be read.
func storedType(data []byte) string {
	var r struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(data, &r) != nil {
		return ""
	}
	return r.Type
}
