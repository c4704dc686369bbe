package compensation

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// csvHeader names the columns of WriteCSV: the JSON names of Result, the
// tier split in two.
var csvHeader = []string{
	"incident", "user", "affected_minutes", "paying", "drill", "open", "counted_to",
	"tier_min_minutes", "tier_amount", "amount", "currency", "capped", "rule", "explanation",
}

// WriteCSV writes rs to w as CSV: a header row, then one row per result,
// amounts in the currency's minor unit, the tier columns empty when no
// tier applied. A cell a spreadsheet would take for a formula (starting
// with = + - @, a tab, a carriage return or a line feed, or their
// full-width forms) gets a leading ' so that it is shown as text; every
// Matrix user ID, starting with @, gets one. It returns the first error
// of writing.
func WriteCSV(w io.Writer, rs []Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("write csv header: %w", err)
	}
	for _, r := range rs {
		tierMin, tierAmount := "", ""
		if r.Tier != nil {
			tierMin, tierAmount = strconv.Itoa(r.Tier.MinMinutes), strconv.FormatInt(r.Tier.Amount, 10)
		}
		row := []string{
			r.Incident, r.User, strconv.Itoa(r.AffectedMinutes),
			strconv.FormatBool(r.Paying), strconv.FormatBool(r.Drill), strconv.FormatBool(r.Open),
			r.CountedTo.Format(time.RFC3339), tierMin, tierAmount,
			strconv.FormatInt(r.Amount, 10), r.Currency, strconv.FormatBool(r.Capped),
			r.Rule, r.Explanation,
		}
		for i := range row {
			row[i] = safeCell(row[i])
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write csv row of %s: %w", r.User, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// safeCell defuses a cell a spreadsheet would evaluate as a formula
// (OWASP's advice on CSV injection).
func safeCell(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	if strings.ContainsRune("=+-@\t\r\n＝＋－＠", r) {
		return "'" + s
	}
	return s
}

// WriteJSON writes rs to w as an indented JSON array ([] when empty). It
// returns the error of writing.
func WriteJSON(w io.Writer, rs []Result) error {
	if rs == nil {
		rs = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rs); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
