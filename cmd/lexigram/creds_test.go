package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
)

// TestCredsFlag: --creds authenticates with a credentials file (JWT and
// seed) against a server in operator mode, where nothing else gets in; a
// missing file is refused naming the flag, a wrong one naming the file.
func TestCredsFlag(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, _ := nkeys.CreateOperator()
	opPub, _ := operator.PublicKey()
	opClaims := jwt.NewOperatorClaims(opPub)
	opJWT, err := opClaims.Encode(operator)
	must(err)
	encodeAccount := func(name string, js bool) (nkeys.KeyPair, string, string) {
		kp, _ := nkeys.CreateAccount()
		pub, _ := kp.PublicKey()
		c := jwt.NewAccountClaims(pub)
		c.Name = name
		if js {
			c.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		tok, err := c.Encode(operator)
		must(err)
		return kp, pub, tok
	}
	_, sysPub, sysJWT := encodeAccount("SYS", false)
	acct, acctPub, acctJWT := encodeAccount("APP", true)
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(userPub)
	uc.IssuerAccount = acctPub
	userJWT, err := uc.Encode(acct)
	must(err)
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	must(err)
	dir := t.TempDir()
	credsPath := filepath.Join(dir, "app.creds")
	must(os.WriteFile(credsPath, creds, 0o600))
	must(os.WriteFile(filepath.Join(dir, "bad.creds"), []byte("not a credentials file\n"), 0o600))

	srv := embeddedtest.Server(t, func(o *embedded.Options) {
		o.ServerOptions = func(so *server.Options) {
			oc, err := jwt.DecodeOperatorClaims(opJWT)
			must(err)
			so.TrustedOperators = []*jwt.OperatorClaims{oc}
			so.SystemAccount = sysPub
			resolver := &server.MemAccResolver{}
			must(resolver.Store(sysPub, sysJWT))
			must(resolver.Store(acctPub, acctJWT))
			so.AccountResolver = resolver
		}
	})
	url := srv.ClientURL()

	if out, err := runStreams(t, "ls", "--nats-url", url); err == nil {
		t.Fatalf("without credentials the server let the CLI in:\n%s", out)
	}
	natsCreds = credsPath
	t.Cleanup(func() { natsCreds = "" })
	if out, err := runStreams(t, "ls", "--nats-url", url); err != nil || !strings.Contains(out, "no streams") {
		t.Fatalf("with --creds: %v\n%s", err, out)
	}
	natsCreds = filepath.Join(dir, "missing.creds")
	if _, err := runStreams(t, "ls", "--nats-url", url); err == nil || !strings.Contains(err.Error(), "--creds") || !strings.Contains(err.Error(), "missing.creds") {
		t.Errorf("a missing credentials file: %v", err)
	}
	natsCreds = filepath.Join(dir, "bad.creds")
	if _, err := runStreams(t, "ls", "--nats-url", url); err == nil || !strings.Contains(err.Error(), "bad.creds") {
		t.Errorf("a file that holds no credentials: %v", err)
	}
}
