package planb

// Record is one entry of a room's log: one or more events of one room that
// were authorised in order against the room state at the position where the
// record landed, and committed together. createRoom's initial events are
// one record, so a room never exists half-made; concurrent sends to one room
// are grouped into one record (group commit).
type Record struct {
	Events []*Event `json:"events"`
	// Txns are the client transactions that produced events of the record.
	// The log is the durable transaction record: read models index it, so a
	// retry with the same txnId finds the original event even after the
	// engine's de-duplication window has passed.
	Txns []Txn `json:"txns,omitempty"`
}

// Txn identifies the client transaction that produced one event.
type Txn struct {
	// Event is the index of the event in the record.
	Event int `json:"event"`
	// Key is TxnKey(user, device, scope, txnID).
	Key      string `json:"key"`
	DeviceID string `json:"device_id"`
	TxnID    string `json:"txn_id"`
}
