// Package discovery is the Go server SDK of the Discovery platform: what a
// game server (a replica) needs to cooperate with the platform that runs it,
// over plain HTTP, as sdk/PROTOCOL.md describes for any language.
//
// A replica learns who it is and where the platform is from its environment
// (FromEnv). It hears that its revision drains, or is re-activated, through
// a drain hook it mounts (DrainHook) and the platform's notice stream
// (FollowNotices), each notice delivered once on a channel or callback
// (Notices, OnNotice). It may keep its revision open with app-held leases
// (TakeLease, KeepLease, ReleaseLease, HoldLease). And a replica of a
// draining revision may move a player, with its state, to the active
// revision (Handoff), then close the player's WebSocket with CloseMoved and
// CloseReason; the replica that receives players keeps their states in a
// Receiver until they arrive with their ticket (Ticket, Receiver.Take).
//
// The package uses the standard library only; it never reads the
// environment except in FromEnv.
package discovery
