package platform

// Limits on aggregate names. IDs become subject tokens of up to three
// times their length, and NATS bounds a subject by its protocol line.
const (
	MaxAggregateTypeLen = 64
	MaxAggregateIDLen   = 256
)

// Validate checks the aggregate type and ID. Every store calls it, so an
// ID the JetStream store rejects is rejected in memory too.
func (s StreamID) Validate() error {
	switch {
	case s.Type == "":
		return Errorf(CodeInvalidArgument, "aggregate type is empty: name it, e.g. \"order\"")
	case len(s.Type) > MaxAggregateTypeLen:
		return Errorf(CodeInvalidArgument, "aggregate type %q is %d bytes: use at most %d", s.Type, len(s.Type), MaxAggregateTypeLen)
	}
	for _, c := range []byte(s.Type) {
		if !isNameByte(c) {
			return Errorf(CodeInvalidArgument, "aggregate type %q has %q: use letters, digits, '-' and '_'", s.Type, c)
		}
	}
	switch {
	case s.ID == "":
		return Errorf(CodeInvalidArgument, "aggregate ID of %s is empty: every aggregate needs an ID", s.Type)
	case len(s.ID) > MaxAggregateIDLen:
		return Errorf(CodeInvalidArgument, "aggregate ID of %s is %d bytes: use at most %d", s.Type, len(s.ID), MaxAggregateIDLen)
	}
	return nil
}
