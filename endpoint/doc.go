// Package endpoint will hold get-endpoint allocation and the gateway that
// proxies HTTP and WebSocket traffic to the replica an endpoint URL pins. It
// fills the reconciler's deployer.SessionCounter with live session counts.
package endpoint
