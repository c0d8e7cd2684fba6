package scrub

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
)

// DefaultMaxRecordingSize bounds the decompressed size of a replay
// recording (zip bombs) when Config.MaxRecordingSize is 0: Relay's
// limits.max_replay_uncompressed_size default.
const DefaultMaxRecordingSize = 100 << 20

// scrubRecording scrubs a replay_recording item (doc §9.5): a JSON header
// line, then the rrweb event array, zlib-compressed or plain. Only custom
// events (type 5) are looked at, and in them only the strings under
// data.payload.description and data.payload.data, as pii=true strings; both
// configurations apply (advanced first), a deleting rule yields "". The
// recording carries no _meta. A recording that does not parse is returned
// unchanged with an error.
func (s *Scrubber) scrubRecording(payload []byte) ([]byte, bool, error) {
	nl := bytes.IndexByte(payload, '\n')
	if nl < 0 {
		return payload, false, fmt.Errorf("scrub: replay recording: no header line")
	}
	header, body := payload[:nl], payload[nl+1:]
	compressed := len(body) > 0 && body[0] == 0x78
	raw := body
	if compressed {
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return payload, false, fmt.Errorf("scrub: replay recording: %w", err)
		}
		limit := s.maxRecording
		raw, err = io.ReadAll(io.LimitReader(zr, limit+1))
		if err != nil {
			return payload, false, fmt.Errorf("scrub: replay recording: decompress: %w", err)
		}
		if int64(len(raw)) > limit {
			return payload, false, fmt.Errorf("scrub: replay recording: larger than %d bytes decompressed (limits.max_replay_uncompressed_size)", limit)
		}
	}
	root, ps, err := parseDoc(raw)
	if err != nil {
		return payload, false, fmt.Errorf("scrub: replay recording: %w", err)
	}
	defer ps.release()
	if root.kind != kArray {
		return payload, false, fmt.Errorf("scrub: replay recording: expected an array of events")
	}
	changed := false
	for _, ev := range root.kids {
		if t := ev.get("type"); t == nil || t.kind != kNumber || t.s != "5" {
			continue
		}
		data := ev.get("data")
		pl := data.get("payload")
		if pl == nil || pl.kind != kObject {
			continue
		}
		for _, cfg := range []*compiledConfig{s.advanced, s.legacy} {
			if cfg == nil {
				continue
			}
			p := proc{cfg: cfg, stringsOnly: true, root: root}
			p.pushState("", -1, 0)
			p.pushState("data", -1, mask(vtObject))
			p.pushState("payload", -1, mask(vtObject))
			p.nodes = append(p.nodes, root, ev, data, pl)
			for i, k := range pl.keys {
				if k == "description" || k == "data" {
					p.visit(pl.kids[i], k, -1, anyTrue)
				}
			}
			changed = changed || p.changed
		}
	}
	if !changed {
		return payload, false, nil
	}
	stripMeta(root, 0)
	out := appendJSON(make([]byte, 0, len(raw)), root)
	if compressed {
		var buf bytes.Buffer
		zw := zlib.NewWriter(&buf)
		if _, err := zw.Write(out); err != nil {
			return payload, false, fmt.Errorf("scrub: replay recording: compress: %w", err)
		}
		if err := zw.Close(); err != nil {
			return payload, false, fmt.Errorf("scrub: replay recording: compress: %w", err)
		}
		out = buf.Bytes()
	}
	res := make([]byte, 0, len(header)+1+len(out))
	res = append(append(append(res, header...), '\n'), out...)
	return res, true, nil
}
