package optable

import "github.com/myclerk/myclerk-bridge/wire"

// Helpers for the families that are declared before they are served: the
// dispatchers answer them UNSUPPORTED until their issue sets Served.

// atOwner is a request about one device, relayed to its node and answered
// there.
func atOwner(op wire.Op, need Need, lock bool) Entry {
	return Entry{Op: op, MinTier: wire.Tier3, Need: need, Lock: lock, Senders: FromAnyone, Server: Owner, Reply: true}
}

// pushed is sent unasked by a device's node (an edge, a received frame, a
// response chunk) and fanned out by the hub.
func pushed(op wire.Op) Entry {
	return Entry{Op: op, MinTier: wire.Tier3, Senders: FromNode | FromHub, Server: Push}
}

// inStream travels between the two ends of a stream, named by its ID.
func inStream(op wire.Op) Entry {
	return Entry{Op: op, MinTier: wire.Tier3, Senders: FromAnyone, Server: Stream}
}

// Streams (draft Table 6): STREAM_START asks the device's node, which
// reads the device; the rest follow the stream.
var streamOps = []Entry{
	atOwner(wire.OpStreamStart, NeedRead, false),
	inStream(wire.OpStreamStop),
	inStream(wire.OpStreamData),
	inStream(wire.OpStreamConfigure),
	inStream(wire.OpStreamQuality),
	inStream(wire.OpStreamPause),
	inStream(wire.OpStreamResume),
}

// GPU services (draft Table 7): a request uses the service (write);
// status and queue are for those who may read it.
var gpuOps = []Entry{
	atOwner(wire.OpGPURequest, NeedWrite, true),
	pushed(wire.OpGPUResponse),
	atOwner(wire.OpGPUStatus, NeedRead, false),
	atOwner(wire.OpGPUCancel, NeedWrite, false),
	atOwner(wire.OpGPUQueueInfo, NeedRead, false),
}

// The hardware buses (draft Tables 9-15): each bus or port is a device of
// its node. Listing and reading need read; anything that drives the bus
// needs write and is refused while another member holds the lock;
// transfers that both send and receive need both.
var usbOps = []Entry{
	atOwner(wire.OpUSBDeviceList, NeedRead, false),
	atOwner(wire.OpUSBDeviceAttach, NeedReadWrite, true),
	atOwner(wire.OpUSBDeviceDetach, NeedReadWrite, true),
	atOwner(wire.OpUSBControlTransfer, NeedReadWrite, true),
	atOwner(wire.OpUSBBulkTransfer, NeedReadWrite, true),
	atOwner(wire.OpUSBInterruptTransfer, NeedReadWrite, true),
	atOwner(wire.OpUSBIsochronousTransfer, NeedReadWrite, true),
	atOwner(wire.OpUSBGetDescriptor, NeedRead, false),
	atOwner(wire.OpUSBSetConfiguration, NeedWrite, true),
	atOwner(wire.OpUSBSetInterface, NeedWrite, true),
	atOwner(wire.OpUSBClearHalt, NeedWrite, true),
	atOwner(wire.OpUSBReset, NeedWrite, true),
}

var serialOps = []Entry{
	atOwner(wire.OpSerialPortList, NeedRead, false),
	atOwner(wire.OpSerialPortOpen, NeedReadWrite, true),
	atOwner(wire.OpSerialPortClose, NeedReadWrite, true),
	atOwner(wire.OpSerialPortConfigure, NeedWrite, true),
	atOwner(wire.OpSerialDataWrite, NeedWrite, true),
	atOwner(wire.OpSerialDataRead, NeedRead, false),
	atOwner(wire.OpSerialControlSet, NeedWrite, true),
	atOwner(wire.OpSerialControlGet, NeedRead, false),
	atOwner(wire.OpSerialBreak, NeedWrite, true),
}

var gpioOps = []Entry{
	atOwner(wire.OpGPIOChipList, NeedRead, false),
	atOwner(wire.OpGPIOLineInfo, NeedRead, false),
	atOwner(wire.OpGPIOLineRequest, NeedReadWrite, true),
	atOwner(wire.OpGPIOLineRelease, NeedReadWrite, true),
	atOwner(wire.OpGPIOLineSet, NeedWrite, true),
	atOwner(wire.OpGPIOLineGet, NeedRead, false),
	atOwner(wire.OpGPIOLineWatch, NeedRead, false),
	pushed(wire.OpGPIOEvent),
	atOwner(wire.OpGPIOPWMConfigure, NeedWrite, true),
	atOwner(wire.OpGPIOPWMSet, NeedWrite, true),
}

var i2cOps = []Entry{
	atOwner(wire.OpI2CBusList, NeedRead, false),
	atOwner(wire.OpI2CBusScan, NeedRead, false),
	atOwner(wire.OpI2CTransfer, NeedReadWrite, true),
	atOwner(wire.OpI2CWriteByte, NeedWrite, true),
	atOwner(wire.OpI2CReadByte, NeedRead, false),
	atOwner(wire.OpI2CWriteBlock, NeedWrite, true),
	atOwner(wire.OpI2CReadBlock, NeedRead, false),
	atOwner(wire.OpI2CSMBusCommand, NeedReadWrite, true),
}

var spiOps = []Entry{
	atOwner(wire.OpSPIBusList, NeedRead, false),
	atOwner(wire.OpSPIDeviceOpen, NeedReadWrite, true),
	atOwner(wire.OpSPIDeviceClose, NeedReadWrite, true),
	atOwner(wire.OpSPIConfigure, NeedWrite, true),
	atOwner(wire.OpSPITransfer, NeedReadWrite, true),
	atOwner(wire.OpSPIWrite, NeedWrite, true),
	atOwner(wire.OpSPIRead, NeedRead, false),
}

var canOps = []Entry{
	atOwner(wire.OpCANInterfaceList, NeedRead, false),
	atOwner(wire.OpCANInterfaceOpen, NeedReadWrite, true),
	atOwner(wire.OpCANInterfaceClose, NeedReadWrite, true),
	atOwner(wire.OpCANConfigure, NeedWrite, true),
	atOwner(wire.OpCANFrameSend, NeedWrite, true),
	pushed(wire.OpCANFrameReceive),
	atOwner(wire.OpCANFilterSet, NeedWrite, true),
	atOwner(wire.OpCANErrorStatus, NeedRead, false),
}

var oneWireOps = []Entry{
	atOwner(wire.OpOneWireBusList, NeedRead, false),
	atOwner(wire.OpOneWireSearch, NeedRead, false),
	atOwner(wire.OpOneWireReset, NeedWrite, true),
	atOwner(wire.OpOneWireReadROM, NeedRead, false),
	atOwner(wire.OpOneWireMatchROM, NeedWrite, true),
	atOwner(wire.OpOneWireSkipROM, NeedWrite, true),
	atOwner(wire.OpOneWireRead, NeedRead, false),
	atOwner(wire.OpOneWireWrite, NeedWrite, true),
}
