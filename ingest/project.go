package ingest

import (
	"net/http"

	"github.com/VictoriaMetrics/metrics"
)

// ProjectGate decides, from the project config of a request's key, whether
// ingest may store it (protocol doc §1.0, §2.2, §2.4). internal/project's
// *Registry is the real one.
//
// Admit gets the request's public key, the project id it states
// (haveProject false: none, the legacy /api/store/ route) and its origin
// (Origin, else Referer; "" when neither is an http(s) URL). It returns ""
// to accept, or the name of Relay's DiscardReason ("ProjectId", "Cors",
// "ProjectState", …) to refuse with 403; and, when the key's project is
// known, that project's id, which the envelope is then sent to. Before a
// key's config is known it must accept, as Relay does: the worker decides.
// Admit is called on every request: it must not block.
type ProjectGate interface {
	Admit(publicKey string, projectID uint64, haveProject bool, origin string) (reason string, knownProjectID uint64)
}

// Refusals by a project config, by Relay's DiscardReason.
var (
	droppedProjectID    = metrics.NewCounter(`relay_ingest_rejected_total{reason="project_id"}`)
	droppedCors         = metrics.NewCounter(`relay_ingest_rejected_total{reason="cors"}`)
	droppedProjectState = metrics.NewCounter(`relay_ingest_rejected_total{reason="project_state"}`)
	droppedProjectOther = metrics.NewCounter(`relay_ingest_rejected_total{reason="project_other"}`)
)

// Shared refusals for the reasons the gate gives today (no allocation).
var (
	errRejectedProjectID    = errEventRejected("ProjectId", droppedProjectID)
	errRejectedCors         = errEventRejected("Cors", droppedCors)
	errRejectedProjectState = errEventRejected("ProjectState", droppedProjectState)
)

func errEventRejected(reason string, c *metrics.Counter) *apiError {
	return &apiError{status: http.StatusForbidden, detail: "event submission rejected with_reason: " + reason, dropped: c}
}

// admitProject asks the gate about the request. On acceptance it returns
// nil and, when the key's project is known, points projectID at it.
func (s *Server) admitProject(publicKey string, projectID *uint64, haveProject *bool, origin string) *apiError {
	if s.cfg.Projects == nil {
		return nil
	}
	reason, known := s.cfg.Projects.Admit(publicKey, *projectID, *haveProject, origin)
	switch reason {
	case "":
		if known != 0 {
			*projectID, *haveProject = known, true
		}
		return nil
	case "ProjectId":
		return errRejectedProjectID
	case "Cors":
		return errRejectedCors
	case "ProjectState":
		return errRejectedProjectState
	}
	return errEventRejected(reason, droppedProjectOther)
}
