// Package azservicebus is the Azure Service Bus adapter of bridges, on
// the azservicebus SDK (github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus),
// registered as the broker "azservicebus".
//
// # Publisher
//
// The Publisher sends to a queue or a topic in batches as large as the
// link allows (NewMessageBatch, SendMessageBatch) and returns once
// Service Bus accepted each batch, so the outbound bridge acks a
// JetStream message only after its send completed. A message's ID is its
// MessageId, so an entity with duplicate detection drops the copy that a
// retry after a lost acknowledgement sends; IDs and keys longer than
// Service Bus's 128 characters become "sha256:" and a hash of them, the
// same every time. Its Subject is the Subject, its Content-Type header the
// ContentType, every other header an application property (CloudEvents
// binary mode: "cloudEvents_" properties, as the AMQP binding has them).
//
// With Sessions (the entity requires sessions), a message's SessionId is
// its Key, the aggregate ID for events (its subject for plain messages),
// so Service Bus delivers one aggregate's events in order. Each batch then
// holds one session's messages; when one fails, the later messages of
// that session in the call fail too, unsent, so that none overtakes it on
// the retry, while other sessions go on. A message too large for an empty
// batch is refused for good (bridges.Refused): the bridge dead-letters it.
//
// # Subscriber
//
// The Subscriber receives from a queue or a topic's subscription in
// peek-lock mode. Ack completes a message, Nack abandons it (it comes
// again and its delivery count grows: past the entity's MaxDeliveryCount
// Service Bus dead-letters it), and Subscriber.DeadLetter moves it to the
// dead-letter sub-queue with a reason. A message the adapter cannot
// represent (a body that is an AMQP value or sequence, or several data
// sections, which only non-Azure AMQP clients send) is dead-lettered there
// at once, with the reason "lexigram: cannot bridge". Deliveries carry the
// MessageId as ID (the sequence number when there is none), the SessionId
// as Key, the Subject as Subject, and the application properties and
// ContentType as headers.
//
// Prefetch bounds the messages held unsettled; the subscriber asks for no
// more than the free places. While a message is held its lock is renewed
// (RenewMessageLock) when half of its time is left, so an inbound bridge
// riding out a JetStream outage keeps it, for up to LockRenewal (an hour
// by default): after that the lock runs out and Service Bus delivers the
// message again. Close abandons whatever is held, so it comes again at
// once instead of when its lock runs out.
//
// With Sessions the subscriber holds up to MaxSessions sessions at once
// (AcceptNextSession), receives each one's messages in order, renews the
// session's lock (RenewSessionLock) the same way, and releases a session
// once it held nothing and received nothing for SessionIdle, so that a few
// session slots serve any number of aggregates. A session whose lock is
// lost is released; its unsettled messages come again, in order, to
// whichever receiver takes the session next.
//
// Failures of Service Bus are retried with backoff, and explained: the
// SDK's codes (unauthorized, not found, connection lost, lock lost) become
// errors that name the entity and the namespace, say what to fix (the
// policy's Send or Listen claim, creating the entity, the sessions
// setting), and never show the connection string's key or signature. A
// client the adapter makes retries inside the SDK briefly (about four
// seconds) before the adapter's own backoff takes over and Connected turns
// false; a Client passed in keeps its own retry options.
//
// # Settings
//
// Of the registered driver:
//
//   - connection_string: the namespace's or entity's, from a shared
//     access policy (never shown);
//   - queue, or topic (publishers) / topic and subscription (subscribers);
//   - sessions: "true" when the entity requires sessions;
//   - prefetch: messages held unsettled, per session with sessions (1 to
//     5000, default 10);
//   - max_sessions: sessions held at once (default 8);
//   - session_idle: how long an idle session is kept (default "1s");
//   - lock_renew: how long a held message's lock is renewed (default
//     "1h"; "off" never renews).
//
// # What was tested, and against what
//
// No Service Bus namespace was reachable where this adapter was written
// (the official emulator needs Docker), so its logic is tested against an
// in-memory fake of the few SDK calls it makes (the small interfaces in
// links.go), which models peek-lock with lock durations, abandon and
// expiry redelivery, delivery counts and MaxDeliveryCount, the dead-letter
// sub-queue, sessions (one receiver per session, order within a session,
// session locks), duplicate detection, batch size limits, topics with
// subscriptions, and outages. The acceptance suite (bridges/bridgetest)
// runs over it on a queue, a session-enabled queue and a subscription,
// Reconnect included, as do the bridge tests with JetStream. Against the
// real SDK, only without a namespace: connection strings are parsed, and a
// publish or receive against an unreachable endpoint fails, is explained
// and retried, and Close returns.
//
// Never tested against a real namespace:
//
//   - AMQP link behaviour: link detach and recovery inside the SDK,
//     whether a Receiver is usable again after CodeConnectionLost (the SDK's
//     source says so), settling through the management link after a link
//     was lost, what closing a receiver does to the locks of its unsettled
//     messages;
//   - real lock durations and clock skew between this host and the
//     service (renewal is timed by LockedUntil against the local clock);
//   - session lock renewal timing, AcceptNextSession's server-side
//     timeout, session lock loss on a real disconnect, and whether a
//     released session's messages keep their order on a real entity;
//   - the exact AMQP conditions Service Bus returns when a message
//     without a SessionId is sent to a session-enabled entity, or a plain
//     receiver opens one (the hint assumes amqp:not-allowed or
//     amqp:invalid-field), and for a disabled or full entity;
//   - the server's duplicate detection window, and batch size limits
//     (256 KiB Standard, 1 MiB Premium) as the service enforces them;
//   - throttling (server-busy), quotas, partitioned entities (where a
//     batch's messages need one partition key) and Premium large
//     messages;
//   - authentication beyond the connection string's form: SAS token
//     refresh, expired signatures, Microsoft Entra ID credentials through a
//     Client.
//
// TestLiveAcceptance and TestLiveLockRenewal run the acceptance suite and
// a held message's renewal against a real namespace when
// LEXIGRAM_TEST_ASB_CONNECTION_STRING is set (with the Manage claim each
// case gets a fresh queue; otherwise LEXIGRAM_TEST_ASB_QUEUE and
// LEXIGRAM_TEST_ASB_SESSION_QUEUE name existing queues, drained first).
// They skip otherwise, in CI too, where no namespace is reachable.
package azservicebus
