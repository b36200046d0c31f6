package pkarrclient

// MayServeOlder implements [MayServeOlder]: a lookup may reach DHT nodes
// that never got the newest packet, so an older answer is not a lie.
func (d *DHT) MayServeOlder() bool { return true }
