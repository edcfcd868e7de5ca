package config

import (
	"crypto/tls"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Embedded reports whether the process runs its own NATS server, which it
// does when no URLs are configured.
func (n NATS) Embedded() bool { return len(n.URLs) == 0 }

// Options translates n into options for nats.Connect (for n.URLs joined
// with ","). Files named by n are read when connecting, so a missing or bad
// file is reported by nats.Connect.
func (n NATS) Options() []nats.Option {
	opts := []nats.Option{
		nats.Name(n.Name),
		// A long-running process must outlive server restarts and
		// failovers instead of giving up after nats.go's default 60 tries.
		nats.MaxReconnects(-1),
	}
	if n.ConnectTimeout > 0 {
		opts = append(opts, nats.Timeout(n.ConnectTimeout))
	}
	switch {
	case n.CredsFile != "":
		opts = append(opts, nats.UserCredentials(n.CredsFile))
	case n.NKeyFile != "":
		opts = append(opts, nkeyFromSeed(n.NKeyFile))
	case n.User != "":
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	case n.Token != "":
		opts = append(opts, nats.Token(n.Token))
	}
	// ClientCert and RootCAs register callbacks rather than editing
	// TLSConfig, so Secure's replacing TLSConfig does not undo them.
	if n.TLS.InsecureSkipVerify {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}))
	}
	if n.TLS.CertFile != "" || n.TLS.KeyFile != "" {
		opts = append(opts, nats.ClientCert(n.TLS.CertFile, n.TLS.KeyFile))
	}
	if n.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(n.TLS.CAFile))
	}
	return opts
}

// nkeyFromSeed defers nats.NkeyOptionFromSeed, which reads the seed file at
// once, to connect time, where an error can be returned.
func nkeyFromSeed(file string) nats.Option {
	return func(o *nats.Options) error {
		opt, err := nats.NkeyOptionFromSeed(file)
		if err != nil {
			return fmt.Errorf("nats.nkey_file %s: %w", file, err)
		}
		return opt(o)
	}
}
