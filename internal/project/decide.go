package project

import "context"

// Decide tells the worker whether envelopes of publicKey, accepted before
// its config was known, may go upstream. It waits while the key is Pending
// (until ctx ends: pending true). reason is "" to forward, or the
// DiscardReason a cached config gives now: ProjectId for a missing key, a
// disabled key or project, or another project than the key's. A config
// that does not parse is left to the scrub stage (reason ""), which refuses
// to forward what it cannot scrub by the project's rules. projectID 0 is a
// request that stated none. It implements worker.ProjectDecider.
func (r *Registry) Decide(ctx context.Context, publicKey string, projectID uint64) (reason string, pending bool) {
	if st, _ := r.WaitKnown(ctx, publicKey); st == Pending {
		return "", true
	}
	reason, _ = r.Admit(publicKey, projectID, projectID != 0, "")
	if reason == ReasonProjectState {
		return "", false
	}
	return reason, false
}
