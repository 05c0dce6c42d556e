package bustest_test

import (
	"testing"

	"go.uber.org/goleak"

	"mediasvc/ports"
	"mediasvc/ports/bustest"
	"mediasvc/ports/portstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The in-memory bus passes the same contract as redisstore.Bus.
func TestBusNetContract(t *testing.T) {
	bustest.Run(t, func(*testing.T) func(string) ports.Bus {
		net := portstest.NewBusNet()
		return func(id string) ports.Bus { return net.On(id) }
	})
}
