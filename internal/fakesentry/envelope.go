package fakesentry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Item is one envelope item as the fake parsed it.
type Item struct {
	Type    string
	Header  json.RawMessage // the item header line as received
	Payload []byte
}

// envelopeHeader is the parsed first line.
type parsedEnvelope struct {
	header  json.RawMessage
	eventID string // normalised, "" when absent
	items   []Item
}

// parseEnvelope is the fake's own reading of the envelope grammar
// (relay-protocol.md §3.1), written apart from internal/envelope on
// purpose: it is the independent check of what the relay forwards. It is
// as strict as Relay where Relay is strict:
//   - the header is one line holding a JSON object; event_id, when present,
//     must be a UUID (32 hex, dashes allowed);
//   - every item header is a JSON object with a non-empty string "type" and
//     an optional non-negative integer "length";
//   - with a length, exactly that many payload bytes follow, then "\n" or
//     the end; without, the payload runs to the next "\n" or the end;
//   - a blank line where an item header is expected is an error (Relay's
//     streaming reader reports "unexpected end of file").
func parseEnvelope(b []byte) (*parsedEnvelope, error) {
	line, rest, _ := bytes.Cut(b, []byte{'\n'})
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(line, &hdr); err != nil || hdr == nil {
		return nil, fmt.Errorf("envelope header is not a JSON object: %v", errOrNull(err))
	}
	env := &parsedEnvelope{header: json.RawMessage(line)}
	if raw, ok := hdr["event_id"]; ok && string(raw) != "null" {
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			return nil, fmt.Errorf("event_id is not a string: %s", raw)
		}
		norm, ok := normaliseEventID(id)
		if !ok {
			return nil, fmt.Errorf("event_id %q is not a UUID", id)
		}
		env.eventID = norm
	}
	for len(rest) > 0 {
		line, after, _ := bytes.Cut(rest, []byte{'\n'})
		var ih struct {
			Type   *string         `json:"type"`
			Length json.RawMessage `json:"length"`
		}
		if err := json.Unmarshal(line, &ih); err != nil || !bytes.HasPrefix(bytes.TrimSpace(line), []byte{'{'}) {
			return nil, fmt.Errorf("item %d: header is not a JSON object: %q", len(env.items), truncate(line))
		}
		if ih.Type == nil || *ih.Type == "" {
			return nil, fmt.Errorf("item %d: header has no type", len(env.items))
		}
		it := Item{Type: *ih.Type, Header: json.RawMessage(line)}
		if len(ih.Length) > 0 && string(ih.Length) != "null" {
			var n uint32
			if err := json.Unmarshal(ih.Length, &n); err != nil {
				return nil, fmt.Errorf("item %d: bad length %s", len(env.items), ih.Length)
			}
			if uint64(n) > uint64(len(after)) {
				return nil, fmt.Errorf("item %d: length %d but only %d bytes left: unexpected end of file", len(env.items), n, len(after))
			}
			it.Payload = after[:n]
			after = after[n:]
			if len(after) > 0 {
				if after[0] != '\n' {
					return nil, fmt.Errorf("item %d: missing newline after payload", len(env.items))
				}
				after = after[1:]
			}
		} else {
			it.Payload, after, _ = bytes.Cut(after, []byte{'\n'})
		}
		env.items = append(env.items, it)
		rest = after
	}
	return env, nil
}

func errOrNull(err error) error {
	if err == nil {
		return errors.New("null")
	}
	return err
}

func truncate(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

// normaliseEventID turns a UUID (32 hex, or 36 with dashes at the usual
// places) into 32 lowercase hex, as Sentry stores it.
func normaliseEventID(id string) (string, bool) {
	if len(id) == 36 {
		if id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
			return "", false
		}
		id = strings.ReplaceAll(id, "-", "")
	}
	if len(id) != 32 {
		return "", false
	}
	if !isHex(id) {
		return "", false
	}
	return strings.ToLower(id), true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}
