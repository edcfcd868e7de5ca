package platform

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec turns event and snapshot values into bytes and back. Its name is
// stored with every event, so a store can change its codec and still read
// what it wrote before.
type Codec interface {
	Name() string
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// The codecs that ship with the platform.
var (
	Msgpack Codec = msgpackCodec{}
	JSON    Codec = jsonCodec{}
)

// CodecByName returns a shipped codec by the name it stores.
func CodecByName(name string) (Codec, error) {
	switch name {
	case "msgpack", "":
		return Msgpack, nil
	case "json":
		return JSON, nil
	}
	return nil, Errorf(CodeInvalidArgument, "codec %q is unknown: use \"msgpack\" or \"json\"", name)
}

type msgpackCodec struct{}

// msgpackBuffers are scratch buffers: msgpack.Marshal grows a fresh buffer
// several times per event; encoding into a reused one and copying out the
// result costs one allocation.
var msgpackBuffers = sync.Pool{New: func() any { return new(msgpackScratch) }}

type msgpackScratch struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

func (msgpackCodec) Name() string { return "msgpack" }

func (msgpackCodec) Marshal(v any) ([]byte, error) {
	s := msgpackBuffers.Get().(*msgpackScratch)
	defer msgpackBuffers.Put(s)
	s.buf.Reset()
	if s.enc == nil {
		s.enc = msgpack.NewEncoder(&s.buf)
	}
	if err := s.enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.Clone(s.buf.Bytes()), nil
}

// msgpackReaders pair a decoder with a reader, which msgpack.Unmarshal
// allocates afresh for every event.
var msgpackReaders = sync.Pool{New: func() any { return new(msgpackReader) }}

type msgpackReader struct {
	rd  bytes.Reader
	dec *msgpack.Decoder
}

func (msgpackCodec) Unmarshal(data []byte, v any) error {
	r := msgpackReaders.Get().(*msgpackReader)
	defer msgpackReaders.Put(r)
	r.rd.Reset(data)
	if r.dec == nil {
		r.dec = msgpack.NewDecoder(&r.rd)
	} else {
		r.dec.Reset(&r.rd)
	}
	return r.dec.Decode(v)
}

type jsonCodec struct{}

func (jsonCodec) Name() string                       { return "json" }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
