package mainline

import "github.com/phrasemeet/discovery/pkarrclient"

var _ pkarrclient.MayServeOlder = (*DHT)(nil)

// MayServeOlder implements [pkarrclient.MayServeOlder]: a lookup may reach
// DHT nodes that never got the newest packet, so an older answer is not a
// lie.
func (d *DHT) MayServeOlder() bool { return true }
