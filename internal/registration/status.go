package registration

// Registration reports the state (registering, registered, renewing,
// denied) and, while not authenticated, why: for the status page and
// `relay status`.
func (m *Monitor) Registration() (state, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state.String(), m.reason
}
