package engine

// flowWakeups returns the number of admission waiters woken so far on c's
// current session.
func flowWakeups(c *Conn) uint64 { return c.sess.Load().aq.wakeups.Load() }
