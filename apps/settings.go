package apps

import (
	"encoding/json"
	"fmt"
	"slices"
)

// What one app_updated event may spend on its changes (see the store's
// worst case in README): each value cut to maxChangeValue bytes, the list to
// maxChanges entries and maxChangeBytes of text, the rest counted in a last
// entry.
const (
	maxChangeValue = 40
	maxChangeBytes = 256
	maxChanges     = 8
)

// notSettings are the App fields a settings change does not set.
var notSettings = map[string]bool{"tenant": true, "name": true, "generation": true,
	"deleting": true, "created_at": true, "updated_at": true}

// SettingsChanged lists the settings that differ between an app before and
// after a change, by JSON name in name order, old -> new (bounded: see
// maxChangeBytes).
func SettingsChanged(before, after App) []SettingChange {
	b, a := fields(before), fields(after)
	names := make([]string, 0, len(a))
	for k := range a {
		names = append(names, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var out []SettingChange
	size, left := 0, 0
	for _, k := range names {
		if notSettings[k] || string(b[k]) == string(a[k]) {
			continue
		}
		c := SettingChange{Field: k, Old: text(b[k]), New: text(a[k])}
		if n := len(c.Field) + len(c.Old) + len(c.New); size+n <= maxChangeBytes && len(out) < maxChanges {
			size += n
			out = append(out, c)
		} else {
			left++
		}
	}
	if left > 0 {
		out = append(out, SettingChange{Field: "…", New: fmt.Sprintf("%d more", left)})
	}
	return out
}

// fields is a's JSON by field name (omitted fields are absent).
func fields(a App) map[string]json.RawMessage {
	raw, err := json.Marshal(a)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

// text is a JSON value as a person reads it: strings unquoted, absent as
// "", cut to maxChangeValue bytes.
func text(v json.RawMessage) string {
	s := string(v)
	var str string
	if json.Unmarshal(v, &str) == nil {
		s = str
	}
	return truncate(s, maxChangeValue)
}
