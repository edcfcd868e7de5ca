package webhook

import (
	"net"
	"net/netip"
	"syscall"

	"github.com/lexigram/events/platform"
)

// nonPublic lists the address ranges a webhook may not reach unless
// Options.AllowPrivate: whoever configures an endpoint must not be able
// to make the node call its own network (server-side request forgery).
var nonPublic = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (0.0.0.0/8)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (where cloud metadata services answer)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved for protocol assignments (RFC 6890)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved for benchmarking (RFC 2544)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
	{netip.MustParsePrefix("100::/64"), "discard-only (RFC 6666)"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local, RFC 4193)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96") // the IPv4 address is the last 4 bytes
	sixTo4 = netip.MustParsePrefix("2002::/16")    // the IPv4 address is bytes 2 to 5
)

// refusal says why a is not a public address, or "" when it is. IPv4
// addresses inside IPv6 ones (mapped, NAT64, 6to4) are judged as IPv4.
func refusal(a netip.Addr) string {
	a = a.WithZone("").Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			if why := refusal(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
				return why + ", inside a NAT64 address"
			}
		case sixTo4.Contains(a):
			if why := refusal(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
				return why + ", inside a 6to4 address"
			}
		}
	}
	for _, r := range nonPublic {
		if r.prefix.Contains(a) {
			return r.why
		}
	}
	return ""
}

// forbiddenAddress is the error of a dial refused by the guard; a request
// to it is not retried.
type forbiddenAddress struct {
	addr, why string
}

func (f *forbiddenAddress) Error() string {
	return platform.Errorf(platform.CodeInvalidArgument, "address %s is %s: refused to guard against server-side request forgery; set allow_private=true (Options.AllowPrivate) only if the endpoint is meant to be on a private network", f.addr, f.why).Error()
}

// guardControl is the dialer's Control function: it runs on the address
// about to be connected, after name resolution, so a host name that
// resolves (or is rebound) to a private address is refused as well.
func guardControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return &forbiddenAddress{addr: address, why: "not an IP address and port"}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return &forbiddenAddress{addr: address, why: "not an IP address"}
	}
	if why := refusal(a); why != "" {
		return &forbiddenAddress{addr: host, why: why}
	}
	return nil
}
