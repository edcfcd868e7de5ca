package azservicebus

import (
	"strconv"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/lexigram/events/platform"
)

// oneEntity checks that a publisher names a queue or a topic, and a
// subscriber a queue or a topic's subscription.
func oneEntity(role, queue, topic, subscription string) error {
	switch {
	case queue != "" && topic != "":
		return platform.Errorf(platform.CodeInvalidArgument, "azservicebus %s: queue %q and topic %q are both set: name one entity", role, queue, topic)
	case queue == "" && topic == "":
		if role == "subscriber" {
			return platform.Errorf(platform.CodeInvalidArgument, "azservicebus subscriber: no entity: set queue, or topic and subscription")
		}
		return platform.Errorf(platform.CodeInvalidArgument, "azservicebus publisher: no entity: set queue or topic")
	case role == "subscriber" && topic != "" && subscription == "":
		return platform.Errorf(platform.CodeInvalidArgument, "azservicebus subscriber: topic %q without a subscription: set subscription to the topic's subscription to receive from", topic)
	case role == "subscriber" && queue != "" && subscription != "":
		return platform.Errorf(platform.CodeInvalidArgument, "azservicebus subscriber: subscription %q with queue %q: subscriptions belong to topics; set topic instead of queue, or drop subscription", subscription, queue)
	}
	return nil
}

// entityName is how errors name the entity.
func entityName(queue, topic, subscription string) string {
	switch {
	case queue != "":
		return "queue " + strconv.Quote(queue)
	case subscription != "":
		return "subscription " + strconv.Quote(subscription) + " of topic " + strconv.Quote(topic)
	}
	return "topic " + strconv.Quote(topic)
}

// sdkRetries are the SDK's own retries in a client the adapter makes:
// a few quick ones (about 4s in all, against its default of about 30s),
// after which the adapter retries with its backoff and reports the
// outage (Connected, the logs).
var sdkRetries = sb.RetryOptions{MaxRetries: 3, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 2 * time.Second}

// open makes the client of one entity: over c when given (left open by
// Close), else over a client of its own from the connection string.
func open(connStr string, c *sb.Client, queue, topic, subscription string) (client, where, error) {
	w := newWhere(connStr, entityName(queue, topic, subscription))
	own := false
	if c == nil {
		if connStr == "" {
			return nil, w, platform.Errorf(platform.CodeInvalidArgument, "%s: the connection string is empty: set connection_string to one of the namespace's shared access policies (Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=<policy>;SharedAccessKey=<key>), or pass a Client", w)
		}
		var err error
		if c, err = sb.NewClientFromConnectionString(connStr, &sb.ClientOptions{RetryOptions: sdkRetries}); err != nil {
			return nil, w, w.errorf(platform.CodeInvalidArgument, "%s: the connection string does not parse (%s): copy it whole from the namespace's shared access policies", w, w.scrub(err.Error()))
		}
		own = true
	}
	return sdkClient{c: c, own: own, queue: queue, topic: topic, subsc: subscription}, w, nil
}
