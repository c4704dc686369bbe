package projection

import (
	"encoding/binary"
	"unicode"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
)

// The search index is an inverted index of the words of the events that
// server-side search covers (spec "Server Side Search": content.body of
// m.room.message, content.name of m.room.name, content.topic and the
// text/plain m.topic of m.room.topic). Each word of such an event is one
// posting, written in the same batch as the event and deleted in the batch
// of its redaction:
//
//	'W' room word 0x00 idx → field(1) occurrences(uvarint) words(uvarint) origin_server_ts(8)
//
// The word is written as it is, not length-prefixed, and ends with 0x00
// (words never hold one), so that the postings of every word that starts
// with a prefix are one range of keys; within a word they are in timeline
// order.
const kSearch = 'W'

// The fields a posting comes from, one per event type searched.
const (
	fieldBody  byte = 'b' // content.body of m.room.message
	fieldName  byte = 'n' // content.name of m.room.name
	fieldTopic byte = 't' // content.topic (and m.topic) of m.room.topic
)

// searchKeys maps the keys a search may name to their fields.
var searchKeys = map[string]byte{"content.body": fieldBody, "content.name": fieldName, "content.topic": fieldTopic}

// fieldTypes maps a field to the event type it is indexed from.
var fieldTypes = map[byte]string{fieldBody: planb.TypeMessage, fieldName: planb.TypeName, fieldTopic: planb.TypeTopic}

const (
	// maxWordBytes is the longest word indexed; longer ones are cut (at a
	// character boundary), and so are the terms searched for.
	maxWordBytes = 64
	// maxEventWords is the most distinct words indexed of one event (an
	// event is at most 64 KiB; a body of thousands of distinct words is
	// searchable by its first 4,096).
	maxEventWords = 4096
)

// searchText returns the field an event is indexed under and its text, or
// ok false when search does not cover the event. msg is the event's
// message summary, when it has one (its body is decoded already).
func searchText(ev *planb.Event, msg *msgSummary) (field byte, text string, ok bool) {
	switch ev.Type {
	case planb.TypeMessage:
		if msg != nil {
			return fieldBody, msg.body, msg.body != ""
		}
		var c struct {
			Body string `json:"body"`
		}
		if json.Unmarshal(ev.Content, &c) != nil || c.Body == "" {
			return 0, "", false
		}
		return fieldBody, c.Body, true
	case planb.TypeName:
		if !ev.IsState() {
			return 0, "", false
		}
		var c struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(ev.Content, &c) != nil || c.Name == "" {
			return 0, "", false
		}
		return fieldName, c.Name, true
	case planb.TypeTopic:
		if !ev.IsState() {
			return 0, "", false
		}
		var c struct {
			Topic string `json:"topic"`
			Rich  *struct {
				Text []struct {
					Body     string `json:"body"`
					MimeType string `json:"mimetype"`
				} `json:"m.text"`
			} `json:"m.topic"`
		}
		if json.Unmarshal(ev.Content, &c) != nil {
			return 0, "", false
		}
		text := c.Topic
		if c.Rich != nil {
			for _, t := range c.Rich.Text {
				if (t.MimeType == "" || t.MimeType == "text/plain") && t.Body != c.Topic {
					text += "\n" + t.Body
				}
			}
		}
		if text == "" {
			return 0, "", false
		}
		return fieldTopic, text, true
	}
	return 0, "", false
}

// tokens splits text into its words, folded to lower case: runs of
// letters, digits and combining marks, split at everything else. Han
// characters, hiragana and katakana are words of one character each
// (those scripts do not separate words by spaces); Hangul is split at
// spaces and punctuation like Latin script, so a Korean word keeps its
// particles ("서울에서") and is found by its stem as a prefix ("서울").
// Words are cut to maxWordBytes.
func tokens(text string) []string {
	var out []string
	word := make([]byte, 0, 32)
	flush := func() {
		if len(word) > 0 {
			out = append(out, string(word))
			word = word[:0]
		}
	}
	for _, r := range text {
		switch {
		case r < utf8.RuneSelf: // ASCII, most of it
			switch {
			case 'A' <= r && r <= 'Z':
				r += 'a' - 'A'
			case 'a' <= r && r <= 'z' || '0' <= r && r <= '9':
			default:
				flush()
				continue
			}
			if len(word) < maxWordBytes {
				word = append(word, byte(r))
			}
		case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana):
			flush()
			word = utf8.AppendRune(word, r)
			flush()
		case unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.In(r, unicode.Mn, unicode.Mc):
			r = unicode.ToLower(r)
			if len(word)+utf8.RuneLen(r) > maxWordBytes {
				continue // the rest of an over-long word is not indexed
			}
			word = utf8.AppendRune(word, r)
		default:
			flush()
		}
	}
	flush()
	return out
}

// wordStats is what a posting says of its word in its event.
type wordStats struct {
	occurrences int
	words       int // the number of words of the field
}

// eventWords returns the distinct words of text with their counts.
func eventWords(text string) (map[string]int, int) {
	all := tokens(text)
	counts := make(map[string]int, len(all))
	for _, w := range all {
		if _, ok := counts[w]; !ok && len(counts) >= maxEventWords {
			continue
		}
		counts[w]++
	}
	return counts, len(all)
}

// postingKey is the key of word's posting for entry idx of room.
func postingKey(room, word string, idx int) []byte {
	k := append(postingPrefix(room, word), 0)
	return withNum(k, uint64(idx))
}

// postingPrefix is the start of the keys of room's words that begin with
// prefix.
func postingPrefix(room, prefix string) []byte {
	k := appendStr([]byte{kSearch}, room)
	return append(k, prefix...)
}

// posting is one decoded posting.
type posting struct {
	field byte
	wordStats
	ts int64
}

// appendPosting appends a posting's value to v.
func appendPosting(v []byte, field byte, s wordStats, ts int64) []byte {
	v = append(v, field)
	v = binary.AppendUvarint(v, uint64(s.occurrences))
	v = binary.AppendUvarint(v, uint64(s.words))
	return binary.BigEndian.AppendUint64(v, uint64(ts))
}

func decodePosting(v []byte) (posting, bool) {
	if len(v) < 1+1+1+8 {
		return posting{}, false
	}
	p := posting{field: v[0]}
	occ, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return posting{}, false
	}
	words, n2 := binary.Uvarint(v[1+n:])
	if n2 <= 0 || len(v) != 1+n+n2+8 {
		return posting{}, false
	}
	p.occurrences, p.words = int(occ), int(words)
	p.ts = int64(binary.BigEndian.Uint64(v[1+n+n2:]))
	return p, true
}

// indexForSearch writes the postings of entry e to b. Caller holds mu for
// writing.
func indexForSearch(b *pebble.Batch, e *Entry) {
	field, text, ok := searchText(e.Event, e.msg)
	if !ok {
		return
	}
	counts, n := eventWords(text)
	prefix := postingPrefix(e.Event.RoomID, "")
	k := make([]byte, 0, len(prefix)+maxWordBytes+9)
	v := make([]byte, 0, 2*binary.MaxVarintLen32+9)
	for w, c := range counts {
		k = binary.BigEndian.AppendUint64(append(append(append(k[:0], prefix...), w...), 0), uint64(e.Index))
		v = appendPosting(v[:0], field, wordStats{c, n}, e.Event.OriginServerTS)
		b.Set(k, v, nil) // Set copies both
	}
}

// unindexForSearch deletes the postings of entry e (it was redacted) in b.
// Caller holds mu for writing.
func unindexForSearch(b *pebble.Batch, e *Entry) {
	if _, text, ok := searchText(e.Event, e.msg); ok {
		counts, _ := eventWords(text)
		for w := range counts {
			b.Delete(postingKey(e.Event.RoomID, w, e.Index), nil)
		}
	}
}
