package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// runServer starts a NATS server on a free loopback port.
func runServer(t *testing.T, opts *server.Options) string {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return s.ClientURL()
}

// connect connects with n's options to n's URLs.
func connect(t *testing.T, n NATS) error {
	t.Helper()
	nc, err := nats.Connect(strings.Join(n.URLs, ","), n.Options()...)
	if err == nil {
		nc.Close()
	}
	return err
}

func natsFor(url string) NATS {
	n := Default().NATS
	n.URLs = []string{url}
	n.ConnectTimeout = 2 * time.Second
	return n
}

func TestOptionsUserPassword(t *testing.T) {
	url := runServer(t, &server.Options{Username: "u", Password: "p"})
	n := natsFor(url)
	n.User, n.Password = "u", "p"
	n.Name = "config-test"

	nc, err := nats.Connect(url, n.Options()...)
	if err != nil {
		t.Fatalf("connect with right password: %v", err)
	}
	defer nc.Close()
	if nc.Opts.Name != "config-test" || nc.Opts.Timeout != 2*time.Second || nc.Opts.MaxReconnect != -1 {
		t.Errorf("name %q, timeout %v, max reconnects %d; want config-test, 2s, -1",
			nc.Opts.Name, nc.Opts.Timeout, nc.Opts.MaxReconnect)
	}

	n.Password = "wrong"
	if err := connect(t, n); err == nil {
		t.Error("connected with a wrong password")
	}
	n.User, n.Password = "", ""
	if err := connect(t, n); err == nil {
		t.Error("connected without credentials")
	}
}

func TestOptionsToken(t *testing.T) {
	url := runServer(t, &server.Options{Authorization: "s3cret-token"})
	n := natsFor(url)
	n.Token = "s3cret-token"
	if err := connect(t, n); err != nil {
		t.Fatalf("connect with right token: %v", err)
	}
	n.Token = "wrong"
	if err := connect(t, n); err == nil {
		t.Error("connected with a wrong token")
	}
}

func TestOptionsNKey(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	url := runServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})

	seedFile := func(kp nkeys.KeyPair) string {
		seed, _ := kp.Seed()
		path := filepath.Join(t.TempDir(), "user.nk")
		if err := os.WriteFile(path, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	n := natsFor(url)
	n.NKeyFile = seedFile(user)
	if err := connect(t, n); err != nil {
		t.Fatalf("connect with the right nkey: %v", err)
	}

	other, _ := nkeys.CreateUser()
	n.NKeyFile = seedFile(other)
	if err := connect(t, n); err == nil {
		t.Error("connected with an unknown nkey")
	}

	n.NKeyFile = filepath.Join(t.TempDir(), "missing.nk")
	if err := connect(t, n); err == nil || !strings.Contains(err.Error(), "nats.nkey_file") {
		t.Errorf("connect with a missing seed file = %v, want an error naming nats.nkey_file", err)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1, usable by the
// server and the client, and its key.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "config-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func tlsServer(t *testing.T, certFile, keyFile string, verifyClients bool) string {
	t.Helper()
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: certFile, KeyFile: keyFile, CaFile: certFile, Verify: verifyClients,
	})
	if err != nil {
		t.Fatal(err)
	}
	url := runServer(t, &server.Options{TLSConfig: tc, TLSVerify: verifyClients, TLSTimeout: 2})
	return strings.Replace(url, "nats://", "tls://", 1)
}

func TestOptionsTLS(t *testing.T) {
	certFile, keyFile := writeCert(t)
	url := tlsServer(t, certFile, keyFile, false)

	n := natsFor(url)
	if err := connect(t, n); err == nil {
		t.Error("connected to a self-signed server without a CA or insecure_skip_verify")
	}
	n.TLS.CAFile = certFile
	if err := connect(t, n); err != nil {
		t.Errorf("connect with ca_file: %v", err)
	}
	n.TLS.CAFile = ""
	n.TLS.InsecureSkipVerify = true
	if err := connect(t, n); err != nil {
		t.Errorf("connect with insecure_skip_verify: %v", err)
	}
}

func TestOptionsClientCert(t *testing.T) {
	certFile, keyFile := writeCert(t)
	url := tlsServer(t, certFile, keyFile, true)

	n := natsFor(url)
	n.TLS.CAFile = certFile
	if err := connect(t, n); err == nil {
		t.Error("connected without the client certificate the server requires")
	}
	n.TLS.CertFile, n.TLS.KeyFile = certFile, keyFile
	if err := connect(t, n); err != nil {
		t.Errorf("connect with cert_file and key_file: %v", err)
	}
	// Secure must not drop the client certificate added after it.
	n.TLS.InsecureSkipVerify = true
	if err := connect(t, n); err != nil {
		t.Errorf("connect with client cert and insecure_skip_verify: %v", err)
	}
}

func TestEmbedded(t *testing.T) {
	if !(NATS{}).Embedded() {
		t.Error("NATS without URLs: Embedded() = false")
	}
	if (NATS{URLs: []string{"nats://h:4222"}}).Embedded() {
		t.Error("NATS with URLs: Embedded() = true")
	}
}
