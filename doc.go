// Package planb holds the domain of the planb Matrix homeserver: identifiers,
// events, the Matrix error type and the small interfaces between the engine,
// the read models and the HTTP edge. It imports nothing of the project.
//
// The architecture (see README.md): every write is appended to a replicated
// NATS JetStream log and acknowledged only after a quorum of data centers has
// fsynced it; every node derives its read models from that log.
package planb
