package config

import (
	"errors"
	"strings"
	"testing"
)

func TestEncryptionValidate(t *testing.T) {
	if err := (Encryption{}).Validate(); err != nil || (Encryption{}).Enabled() {
		t.Fatalf("the zero value: %v, enabled %v: want valid and off", err, (Encryption{}).Enabled())
	}
	ok := Encryption{KeyFile: "/etc/lexigram/master.keys", Mode: "whole", WholeTypes: []string{"note.added"}, PlainTypes: []string{"order.placed"}}
	if err := ok.Validate(); err != nil || !ok.Enabled() {
		t.Fatalf("%+v: %v, enabled %v", ok, err, ok.Enabled())
	}
	bad := Encryption{KeyFile: "k", KeyEnv: "K", Bucket: "a.b", Mode: "partial", WholeTypes: []string{"x", ""}, PlainTypes: []string{"x"}}
	err := bad.Validate()
	for _, want := range []string{"encryption.key_env", "encryption.bucket", "encryption.mode", "encryption.whole_types[1]", `encryption.plain_types[0]: "x" is listed already as encryption.whole_types[0]`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nnames no %q", err, want)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("Validate: %v is no *FieldError", err)
	}
}
