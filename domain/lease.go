package domain

// Lease is one grant of a device to the instance that captures it. Token
// is a fencing token: every grant of a device has a larger one than the
// grants before it.
type Lease struct {
	Device DeviceID
	Holder string
	Token  int64
}
