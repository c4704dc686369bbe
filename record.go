package planb

// Record is one entry of a room's log: one or more events of one room that
// were authorised together against the room state at the position where the
// record landed, and committed together (createRoom's initial events are one
// record, so a room never exists half-made).
type Record struct {
	Events []*Event `json:"events"`
	// Txn is set when a client transaction produced the record. The log is
	// the durable transaction record: read models index it, so a retry with
	// the same txnId finds the original event even after the engine's
	// de-duplication window has passed.
	Txn *Txn `json:"txn,omitempty"`
}

// Txn identifies the client transaction that produced a record.
type Txn struct {
	// Key is TxnKey(user, device, scope, txnID).
	Key      string `json:"key"`
	DeviceID string `json:"device_id"`
	TxnID    string `json:"txn_id"`
}
