package dsh

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/discovery-platform/discovery/client"
)

// Print writes each value as the shell shows results: lists as aligned
// tables, one object per line, errors as "error: <message> (<code>)".
func Print(vs ...any) {
	w := Output()
	for _, v := range vs {
		if s := Sprint(v); s != "" {
			fmt.Fprintln(w, s)
		}
	}
}

// Sprint formats one value as Print does, without the final newline.
func Sprint(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case error:
		return FormatError(x)
	case string:
		return strings.TrimRight(x, "\n")
	case []client.App:
		return appTable(x)
	case []client.Revision:
		return revisionTable(x)
	case []client.Event:
		return eventTable(x)
	case []client.Tenant:
		return tenantTable(x)
	case []client.Member:
		return memberTable(x)
	case []client.Replica:
		return replicaTable(x)
	case []client.Image:
		return imageTable(x)
	case []client.Lease:
		return leaseTable(x)
	case []client.Setting:
		return settingTable(x)
	case []client.DrainNotice:
		return noticeTable(x)
	case []client.HandoffCount:
		return handoffTable(x)
	case []string:
		return strings.Join(x, "\n")
	case fmt.Stringer:
		return x.String()
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Struct || (rv.Kind() == reflect.Pointer && rv.Elem().Kind() == reflect.Struct) {
		return fmt.Sprintf("%+v", v)
	}
	return fmt.Sprint(v)
}

// FormatError is how the shell shows an error: "error: <the API's message>
// (<its code>)", "error: cannot reach the platform at …", "interrupted".
func FormatError(err error) string {
	var stop Stop
	if errors.As(err, &stop) {
		err = stop.Err
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return "error: " + err.Error()
}

func table(header string, rows [][]string) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, header)
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
	return strings.TrimRight(b.String(), "\n")
}

func none(what string) string { return "(no " + what + ")" }

func appTable(list []client.App) string {
	if len(list) == 0 {
		return none("apps")
	}
	rows := make([][]string, 0, len(list))
	for _, a := range list {
		replicas := fmt.Sprint(a.Replicas)
		if a.TargetSessions > 0 {
			replicas = fmt.Sprintf("%d-%d (%d sessions each)", a.MinReplicas, a.MaxReplicas, a.TargetSessions)
		}
		health := a.HealthPath
		if health == "" {
			health = "tcp"
		}
		status := "ok"
		switch d := a.LastDeploy; {
		case a.Deleting:
			status = "deleting"
		case d != nil && d.Failed:
			status = "last deploy failed: " + d.Revision + " " + d.Reason
		case d != nil && d.State != "active" && d.State != "draining" && d.State != "retired":
			status = "deploying " + d.Revision + " (" + string(d.State) + ")"
		}
		rows = append(rows, []string{a.Name, replicas, health, fmt.Sprint(a.Generation), status})
	}
	return table("NAME\tREPLICAS\tHEALTH\tGENERATION\tSTATUS", rows)
}

func revisionTable(list []client.Revision) string {
	if len(list) == 0 {
		return none("revisions")
	}
	rows := make([][]string, 0, len(list))
	for _, r := range list {
		ready, running := r.Ready()
		rows = append(rows, []string{r.ID, fmt.Sprint(r.Generation), string(r.State), fmt.Sprintf("%d/%d", ready, running),
			age(r.CreatedAt), r.What(), r.Reason, r.Label})
	}
	return table("REVISION\tGEN\tSTATE\tREADY\tAGE\tRUNS\tREASON\tLABEL", rows)
}

func eventTable(list []client.Event) string {
	if len(list) == 0 {
		return none("events")
	}
	rows := make([][]string, 0, len(list))
	for _, e := range list {
		msg := e.Message
		if e.Actor != "" && e.Actor != "platform" {
			msg += " (by " + e.Actor + ")"
		}
		rows = append(rows, []string{e.Time.Local().Format("15:04:05"), e.Symbol() + " " + e.Type, e.Revision, msg})
	}
	return table("TIME\tTYPE\tREVISION\tMESSAGE", rows)
}

func settingTable(list []client.Setting) string {
	rows := make([][]string, 0, len(list))
	for _, s := range list {
		rows = append(rows, []string{s.Name, s.Value})
	}
	return table("SETTING\tVALUE", rows)
}

func noticeTable(list []client.DrainNotice) string {
	if len(list) == 0 {
		return none("drain notices")
	}
	rows := make([][]string, 0, len(list))
	for _, n := range list {
		rows = append(rows, []string{n.Time.Local().Format("15:04:05"), n.Revision, n.State, n.Active,
			fmt.Sprintf("%d/%d", n.Told, n.Replicas), n.Hook})
	}
	return table("TIME\tREVISION\tTOLD IT IS\tNEW PLAYERS GO TO\tREPLICAS TOLD\tHOOK", rows)
}

func handoffTable(list []client.HandoffCount) string {
	if len(list) == 0 {
		return none("handoffs")
	}
	rows := make([][]string, 0, len(list))
	for _, h := range list {
		rows = append(rows, []string{h.Time.Local().Format("15:04:05"), h.From, h.To, fmt.Sprint(h.Moved), fmt.Sprint(h.FellBack)})
	}
	return table("TIME\tFROM\tTO\tMOVED\tFELL BACK", rows)
}

func tenantTable(list []client.Tenant) string {
	if len(list) == 0 {
		return none("tenants")
	}
	rows := make([][]string, 0, len(list))
	for _, t := range list {
		status := "ok"
		if t.Deleting {
			status = "deleting"
		}
		commands := "-"
		if t.AllowCommands {
			commands = "allowed"
		}
		rows = append(rows, []string{t.Name, t.Namespace, fmt.Sprint(t.Quota.MaxApps), fmt.Sprint(t.Quota.MaxReplicas), commands, status})
	}
	return table("TENANT\tNAMESPACE\tMAX APPS\tMAX REPLICAS\tCOMMANDS\tSTATUS", rows)
}

func memberTable(list []client.Member) string {
	if len(list) == 0 {
		return none("members")
	}
	rows := make([][]string, 0, len(list))
	for _, m := range list {
		rows = append(rows, []string{m.Subject, m.Role})
	}
	return table("SUBJECT\tROLE", rows)
}

func replicaTable(list []client.Replica) string {
	if len(list) == 0 {
		return none("replicas")
	}
	rows := make([][]string, 0, len(list))
	for _, r := range list {
		state := r.State
		if r.Stopping && state != "exited" {
			state += " (stopping)"
		}
		rows = append(rows, []string{r.ID, state, r.Address})
	}
	return table("REPLICA\tSTATE\tADDRESS", rows)
}

func imageTable(list []client.Image) string {
	if len(list) == 0 {
		return none("images in the catalog")
	}
	rows := make([][]string, 0, len(list))
	for _, i := range list {
		rows = append(rows, []string{i.Ref, strings.Join(i.Command, " "), age(i.UpdatedAt), i.Description})
	}
	return table("IMAGE\tCOMMAND\tUPDATED\tDESCRIPTION", rows)
}

func leaseTable(list []client.Lease) string {
	if len(list) == 0 {
		return none("leases")
	}
	rows := make([][]string, 0, len(list))
	for _, l := range list {
		replica := l.Replica
		if replica == "" {
			replica = "-"
		}
		rows = append(rows, []string{l.Lease, l.Revision, replica, l.Holder, l.ExpiresIn.D().Round(time.Second).String(), l.TTL.String()})
	}
	return table("LEASE\tREVISION\tREPLICA\tHOLDER\tLEFT\tTTL", rows)
}

// age is a short "how long ago": 12s, 5m, 3h, 2d.
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
