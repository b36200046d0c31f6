package discovery

// QueuedEvents reports, per subscriber, how many events wait in its queue
// (not counting one its goroutine may hold while the subscriber does not
// read), for tests that bound a slow subscriber's memory.
func QueuedEvents(t *Tracker) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []int
	for s := range t.subs {
		s.mu.Lock()
		out = append(out, s.queue.len())
		s.mu.Unlock()
	}
	return out
}
