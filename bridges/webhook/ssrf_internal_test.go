package webhook

import (
	"errors"
	"net/netip"
	"testing"
)

// The guard refuses every non-public range, also inside IPv6 forms, and
// lets public addresses through.
func TestRefusal(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.255.0.9", "::1", "0.0.0.0", "::", "0.1.2.3",
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1", "fd12:3456::1",
		"169.254.169.254", "fe80::1", "fe80::1%eth0", "100.64.0.1",
		"224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255", "240.0.0.1", "198.18.0.1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:c0a8:0101::1", "::127.0.0.1",
	}
	public := []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "192.169.0.1", "100.128.0.1", "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:0808:0808::1"}
	for _, s := range refused {
		if why := refusal(netip.MustParseAddr(s)); why == "" {
			t.Errorf("%s is let through", s)
		}
	}
	for _, s := range public {
		if why := refusal(netip.MustParseAddr(s)); why != "" {
			t.Errorf("%s is refused as %s", s, why)
		}
	}
	var fa *forbiddenAddress
	if err := guardControl("tcp4", "127.0.0.1:80", nil); !errors.As(err, &fa) || fa.why != "loopback" {
		t.Errorf("guardControl on loopback: %v", err)
	}
	if err := guardControl("tcp6", "[fe80::1%lo]:443", nil); !errors.As(err, &fa) {
		t.Errorf("guardControl on link-local with a zone: %v", err)
	}
	if err := guardControl("tcp4", "93.184.215.14:443", nil); err != nil {
		t.Errorf("guardControl on a public address: %v", err)
	}
	if err := guardControl("tcp", "nonsense", nil); err == nil {
		t.Error("guardControl on an address that does not parse: nil")
	}
}
