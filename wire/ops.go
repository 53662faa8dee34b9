package wire

import "fmt"

// Op is a 16-bit operation code (draft §6).
type Op uint16

// Session management (Table 3).
const (
	OpNOP             Op = 0x0000
	OpKeepalive       Op = 0x0001
	OpKeepaliveAck    Op = 0x0002
	OpSessionInit     Op = 0x0003
	OpSessionAck      Op = 0x0004
	OpSessionClose    Op = 0x0005
	OpSessionCloseAck Op = 0x0006
	OpSessionResume   Op = 0x0007
	OpSessionResumed  Op = 0x0008
)

// Key management (Table 4).
const (
	OpKeyExchangeInit     Op = 0x0010
	OpKeyExchangeResponse Op = 0x0011
	OpKeyExchangeComplete Op = 0x0012
	OpSessionRotate       Op = 0x0016
	OpSessionRevoke       Op = 0x0017
)

// Core profile extensions (PROFILE.md §P11, §P19, §P34, §P35).
const (
	OpSessionTicket Op = 0x0009 // a resumption ticket for the next session
	OpSessionAuth   Op = 0x0013 // identity proof after the handshake
	OpEnrolRequest  Op = 0x0014 // a new node asks to join with a pairing code
	OpEnrolResponse Op = 0x0015 // its certificate and the family root key

	OpTunnel Op = 0x00F0 // plaintext is one Tier 0 frame
	OpError  Op = 0x00FF // ERROR payload
)

// Device management (Table 5).
const (
	OpDeviceList         Op = 0x0200
	OpDeviceInfo         Op = 0x0201
	OpDeviceSubscribe    Op = 0x0202
	OpDeviceUnsubscribe  Op = 0x0203
	OpDeviceLock         Op = 0x0204
	OpDeviceUnlock       Op = 0x0205
	OpDeviceConfigure    Op = 0x0206
	OpDeviceCapabilities Op = 0x0207
	OpDeviceAnnounce     Op = 0x0208 // profile: a node lists its devices to the hub
	OpDeviceEvent        Op = 0x0209 // profile: an event of a subscribed device
)

// Stream operations (Table 6).
const (
	OpStreamStart     Op = 0x0210
	OpStreamStop      Op = 0x0211
	OpStreamData      Op = 0x0212
	OpStreamConfigure Op = 0x0213
	OpStreamQuality   Op = 0x0214
	OpStreamPause     Op = 0x0215
	OpStreamResume    Op = 0x0216
)

// GPU service operations (Table 7).
const (
	OpGPURequest   Op = 0x0220
	OpGPUResponse  Op = 0x0221
	OpGPUStatus    Op = 0x0222
	OpGPUCancel    Op = 0x0223
	OpGPUQueueInfo Op = 0x0224
)

// Dynamic routing and ACL (Table 8).
const (
	OpRouteCreate   Op = 0x0240
	OpRouteDelete   Op = 0x0241
	OpRouteList     Op = 0x0242
	OpRouteModify   Op = 0x0243
	OpACLSet        Op = 0x0244
	OpACLGet        Op = 0x0245
	OpACLGrant      Op = 0x0246
	OpACLRevoke     Op = 0x0247
	OpRoutePriority Op = 0x0248
)

// USB operations (Table 9).
const (
	OpUSBDeviceList          Op = 0x0600
	OpUSBDeviceAttach        Op = 0x0601
	OpUSBDeviceDetach        Op = 0x0602
	OpUSBControlTransfer     Op = 0x0603
	OpUSBBulkTransfer        Op = 0x0604
	OpUSBInterruptTransfer   Op = 0x0605
	OpUSBIsochronousTransfer Op = 0x0606
	OpUSBGetDescriptor       Op = 0x0607
	OpUSBSetConfiguration    Op = 0x0608
	OpUSBSetInterface        Op = 0x0609
	OpUSBClearHalt           Op = 0x060A
	OpUSBReset               Op = 0x060B
)

// Serial operations (Table 10).
const (
	OpSerialPortList      Op = 0x0610
	OpSerialPortOpen      Op = 0x0611
	OpSerialPortClose     Op = 0x0612
	OpSerialPortConfigure Op = 0x0613
	OpSerialDataWrite     Op = 0x0614
	OpSerialDataRead      Op = 0x0615
	OpSerialControlSet    Op = 0x0616
	OpSerialControlGet    Op = 0x0617
	OpSerialBreak         Op = 0x0618
)

// GPIO operations (Table 11).
const (
	OpGPIOChipList     Op = 0x0620
	OpGPIOLineInfo     Op = 0x0621
	OpGPIOLineRequest  Op = 0x0622
	OpGPIOLineRelease  Op = 0x0623
	OpGPIOLineSet      Op = 0x0624
	OpGPIOLineGet      Op = 0x0625
	OpGPIOLineWatch    Op = 0x0626
	OpGPIOEvent        Op = 0x0627
	OpGPIOPWMConfigure Op = 0x0628
	OpGPIOPWMSet       Op = 0x0629
)

// I2C operations (Table 12).
const (
	OpI2CBusList      Op = 0x0630
	OpI2CBusScan      Op = 0x0631
	OpI2CTransfer     Op = 0x0632
	OpI2CWriteByte    Op = 0x0633
	OpI2CReadByte     Op = 0x0634
	OpI2CWriteBlock   Op = 0x0635
	OpI2CReadBlock    Op = 0x0636
	OpI2CSMBusCommand Op = 0x0637
)

// SPI operations (Table 13).
const (
	OpSPIBusList     Op = 0x0640
	OpSPIDeviceOpen  Op = 0x0641
	OpSPIDeviceClose Op = 0x0642
	OpSPIConfigure   Op = 0x0643
	OpSPITransfer    Op = 0x0644
	OpSPIWrite       Op = 0x0645
	OpSPIRead        Op = 0x0646
)

// CAN bus operations (Table 14).
const (
	OpCANInterfaceList  Op = 0x0650
	OpCANInterfaceOpen  Op = 0x0651
	OpCANInterfaceClose Op = 0x0652
	OpCANConfigure      Op = 0x0653
	OpCANFrameSend      Op = 0x0654
	OpCANFrameReceive   Op = 0x0655
	OpCANFilterSet      Op = 0x0656
	OpCANErrorStatus    Op = 0x0657
)

// 1-Wire operations (Table 15).
const (
	OpOneWireBusList  Op = 0x0660
	OpOneWireSearch   Op = 0x0661
	OpOneWireReset    Op = 0x0662
	OpOneWireReadROM  Op = 0x0663
	OpOneWireMatchROM Op = 0x0664
	OpOneWireSkipROM  Op = 0x0665
	OpOneWireRead     Op = 0x0666
	OpOneWireWrite    Op = 0x0667
)

// OpInfo describes one operation code: its name as written in the draft
// (or PROFILE.md for extensions) and where it is defined.
type OpInfo struct {
	Op          Op
	Name        string
	Description string
	Source      string // "draft Table N" or "profile"
}

var opTable = []OpInfo{
	{OpNOP, "NOP", "No operation", "draft Table 3"},
	{OpKeepalive, "KEEPALIVE", "Session keepalive", "draft Table 3"},
	{OpKeepaliveAck, "KEEPALIVE_ACK", "Keepalive acknowledgment", "draft Table 3"},
	{OpSessionInit, "SESSION_INIT", "Initialize session", "draft Table 3"},
	{OpSessionAck, "SESSION_ACK", "Session acknowledgment", "draft Table 3"},
	{OpSessionClose, "SESSION_CLOSE", "Close session", "draft Table 3"},
	{OpSessionCloseAck, "SESSION_CLOSE_ACK", "Close acknowledgment", "draft Table 3"},
	{OpSessionResume, "SESSION_RESUME", "Resume session with ticket", "draft Table 3"},
	{OpSessionResumed, "SESSION_RESUMED", "Session resumed", "draft Table 3"},
	{OpSessionTicket, "SESSION_TICKET", "Resumption ticket for a later session", "profile"},
	{OpKeyExchangeInit, "KEY_EXCHANGE_INIT", "Initiate key exchange", "draft Table 4"},
	{OpKeyExchangeResponse, "KEY_EXCHANGE_RESPONSE", "Key exchange response", "draft Table 4"},
	{OpKeyExchangeComplete, "KEY_EXCHANGE_COMPLETE", "Key exchange complete", "draft Table 4"},
	{OpSessionAuth, "SESSION_AUTH", "Prove node identity over the transcript", "profile"},
	{OpEnrolRequest, "ENROL_REQUEST", "Join the family with a pairing code", "profile"},
	{OpEnrolResponse, "ENROL_RESPONSE", "Certificate and family root key", "profile"},
	{OpSessionRotate, "SESSION_ROTATE", "Rotate session key", "draft Table 4"},
	{OpSessionRevoke, "SESSION_REVOKE", "Revoke session key", "draft Table 4"},
	{OpTunnel, "TUNNEL", "Plaintext is one Tier 0 frame", "profile"},
	{OpError, "ERROR", "Error report", "profile"},
	{OpDeviceList, "DEVICE_LIST", "List available devices", "draft Table 5"},
	{OpDeviceInfo, "DEVICE_INFO", "Get device information", "draft Table 5"},
	{OpDeviceSubscribe, "DEVICE_SUBSCRIBE", "Subscribe to device events", "draft Table 5"},
	{OpDeviceUnsubscribe, "DEVICE_UNSUBSCRIBE", "Unsubscribe from device", "draft Table 5"},
	{OpDeviceLock, "DEVICE_LOCK", "Lock device for exclusive use", "draft Table 5"},
	{OpDeviceUnlock, "DEVICE_UNLOCK", "Release device lock", "draft Table 5"},
	{OpDeviceConfigure, "DEVICE_CONFIGURE", "Configure device parameters", "draft Table 5"},
	{OpDeviceCapabilities, "DEVICE_CAPABILITIES", "Query device capabilities", "draft Table 5"},
	{OpDeviceAnnounce, "DEVICE_ANNOUNCE", "Announce a node's devices to the hub", "profile"},
	{OpDeviceEvent, "DEVICE_EVENT", "Event of a subscribed device", "profile"},
	{OpStreamStart, "STREAM_START", "Start data stream", "draft Table 6"},
	{OpStreamStop, "STREAM_STOP", "Stop data stream", "draft Table 6"},
	{OpStreamData, "STREAM_DATA", "Stream data payload", "draft Table 6"},
	{OpStreamConfigure, "STREAM_CONFIGURE", "Configure stream parameters", "draft Table 6"},
	{OpStreamQuality, "STREAM_QUALITY", "Adjust quality settings", "draft Table 6"},
	{OpStreamPause, "STREAM_PAUSE", "Pause stream", "draft Table 6"},
	{OpStreamResume, "STREAM_RESUME", "Resume paused stream", "draft Table 6"},
	{OpGPURequest, "GPU_REQUEST", "Submit GPU request", "draft Table 7"},
	{OpGPUResponse, "GPU_RESPONSE", "GPU response (streaming)", "draft Table 7"},
	{OpGPUStatus, "GPU_STATUS", "Query service status", "draft Table 7"},
	{OpGPUCancel, "GPU_CANCEL", "Cancel pending request", "draft Table 7"},
	{OpGPUQueueInfo, "GPU_QUEUE_INFO", "Queue position and ETA", "draft Table 7"},
	{OpRouteCreate, "ROUTE_CREATE", "Create device route", "draft Table 8"},
	{OpRouteDelete, "ROUTE_DELETE", "Delete device route", "draft Table 8"},
	{OpRouteList, "ROUTE_LIST", "List active routes", "draft Table 8"},
	{OpRouteModify, "ROUTE_MODIFY", "Modify existing route", "draft Table 8"},
	{OpACLSet, "ACL_SET", "Set access control", "draft Table 8"},
	{OpACLGet, "ACL_GET", "Get access control", "draft Table 8"},
	{OpACLGrant, "ACL_GRANT", "Grant client access", "draft Table 8"},
	{OpACLRevoke, "ACL_REVOKE", "Revoke client access", "draft Table 8"},
	{OpRoutePriority, "ROUTE_PRIORITY", "Set routing priority", "draft Table 8"},
	{OpUSBDeviceList, "USB_DEVICE_LIST", "List USB devices", "draft Table 9"},
	{OpUSBDeviceAttach, "USB_DEVICE_ATTACH", "Attach USB device", "draft Table 9"},
	{OpUSBDeviceDetach, "USB_DEVICE_DETACH", "Detach USB device", "draft Table 9"},
	{OpUSBControlTransfer, "USB_CONTROL_TRANSFER", "USB control transfer", "draft Table 9"},
	{OpUSBBulkTransfer, "USB_BULK_TRANSFER", "USB bulk transfer", "draft Table 9"},
	{OpUSBInterruptTransfer, "USB_INTERRUPT_TRANSFER", "USB interrupt transfer", "draft Table 9"},
	{OpUSBIsochronousTransfer, "USB_ISOCHRONOUS_TRANSFER", "USB isochronous transfer", "draft Table 9"},
	{OpUSBGetDescriptor, "USB_GET_DESCRIPTOR", "Get USB descriptor", "draft Table 9"},
	{OpUSBSetConfiguration, "USB_SET_CONFIGURATION", "Set USB configuration", "draft Table 9"},
	{OpUSBSetInterface, "USB_SET_INTERFACE", "Set USB interface", "draft Table 9"},
	{OpUSBClearHalt, "USB_CLEAR_HALT", "Clear endpoint halt", "draft Table 9"},
	{OpUSBReset, "USB_RESET", "Reset USB device", "draft Table 9"},
	{OpSerialPortList, "SERIAL_PORT_LIST", "List serial ports", "draft Table 10"},
	{OpSerialPortOpen, "SERIAL_PORT_OPEN", "Open serial port", "draft Table 10"},
	{OpSerialPortClose, "SERIAL_PORT_CLOSE", "Close serial port", "draft Table 10"},
	{OpSerialPortConfigure, "SERIAL_PORT_CONFIGURE", "Configure baud, parity, etc.", "draft Table 10"},
	{OpSerialDataWrite, "SERIAL_DATA_WRITE", "Write to serial port", "draft Table 10"},
	{OpSerialDataRead, "SERIAL_DATA_READ", "Read from serial port", "draft Table 10"},
	{OpSerialControlSet, "SERIAL_CONTROL_SET", "Set control lines (DTR, RTS)", "draft Table 10"},
	{OpSerialControlGet, "SERIAL_CONTROL_GET", "Get control line status", "draft Table 10"},
	{OpSerialBreak, "SERIAL_BREAK", "Send break condition", "draft Table 10"},
	{OpGPIOChipList, "GPIO_CHIP_LIST", "List GPIO chips", "draft Table 11"},
	{OpGPIOLineInfo, "GPIO_LINE_INFO", "Get line information", "draft Table 11"},
	{OpGPIOLineRequest, "GPIO_LINE_REQUEST", "Request GPIO line", "draft Table 11"},
	{OpGPIOLineRelease, "GPIO_LINE_RELEASE", "Release GPIO line", "draft Table 11"},
	{OpGPIOLineSet, "GPIO_LINE_SET", "Set line value", "draft Table 11"},
	{OpGPIOLineGet, "GPIO_LINE_GET", "Get line value", "draft Table 11"},
	{OpGPIOLineWatch, "GPIO_LINE_WATCH", "Watch for edge events", "draft Table 11"},
	{OpGPIOEvent, "GPIO_EVENT", "GPIO edge event notification", "draft Table 11"},
	{OpGPIOPWMConfigure, "GPIO_PWM_CONFIGURE", "Configure PWM output", "draft Table 11"},
	{OpGPIOPWMSet, "GPIO_PWM_SET", "Set PWM duty cycle", "draft Table 11"},
	{OpI2CBusList, "I2C_BUS_LIST", "List I2C buses", "draft Table 12"},
	{OpI2CBusScan, "I2C_BUS_SCAN", "Scan for devices on bus", "draft Table 12"},
	{OpI2CTransfer, "I2C_TRANSFER", "I2C read/write transfer", "draft Table 12"},
	{OpI2CWriteByte, "I2C_WRITE_BYTE", "Write single byte", "draft Table 12"},
	{OpI2CReadByte, "I2C_READ_BYTE", "Read single byte", "draft Table 12"},
	{OpI2CWriteBlock, "I2C_WRITE_BLOCK", "Write data block", "draft Table 12"},
	{OpI2CReadBlock, "I2C_READ_BLOCK", "Read data block", "draft Table 12"},
	{OpI2CSMBusCommand, "I2C_SMBUS_COMMAND", "SMBus protocol command", "draft Table 12"},
	{OpSPIBusList, "SPI_BUS_LIST", "List SPI buses", "draft Table 13"},
	{OpSPIDeviceOpen, "SPI_DEVICE_OPEN", "Open SPI device", "draft Table 13"},
	{OpSPIDeviceClose, "SPI_DEVICE_CLOSE", "Close SPI device", "draft Table 13"},
	{OpSPIConfigure, "SPI_CONFIGURE", "Configure mode, speed, bits", "draft Table 13"},
	{OpSPITransfer, "SPI_TRANSFER", "Full-duplex SPI transfer", "draft Table 13"},
	{OpSPIWrite, "SPI_WRITE", "SPI write-only", "draft Table 13"},
	{OpSPIRead, "SPI_READ", "SPI read-only", "draft Table 13"},
	{OpCANInterfaceList, "CAN_INTERFACE_LIST", "List CAN interfaces", "draft Table 14"},
	{OpCANInterfaceOpen, "CAN_INTERFACE_OPEN", "Open CAN interface", "draft Table 14"},
	{OpCANInterfaceClose, "CAN_INTERFACE_CLOSE", "Close CAN interface", "draft Table 14"},
	{OpCANConfigure, "CAN_CONFIGURE", "Configure bitrate, mode", "draft Table 14"},
	{OpCANFrameSend, "CAN_FRAME_SEND", "Send CAN frame", "draft Table 14"},
	{OpCANFrameReceive, "CAN_FRAME_RECEIVE", "Receive CAN frame", "draft Table 14"},
	{OpCANFilterSet, "CAN_FILTER_SET", "Set receive filter", "draft Table 14"},
	{OpCANErrorStatus, "CAN_ERROR_STATUS", "Get error counters", "draft Table 14"},
	{OpOneWireBusList, "ONEWIRE_BUS_LIST", "List 1-Wire buses", "draft Table 15"},
	{OpOneWireSearch, "ONEWIRE_SEARCH", "Search for devices", "draft Table 15"},
	{OpOneWireReset, "ONEWIRE_RESET", "Reset bus", "draft Table 15"},
	{OpOneWireReadROM, "ONEWIRE_READ_ROM", "Read device ROM", "draft Table 15"},
	{OpOneWireMatchROM, "ONEWIRE_MATCH_ROM", "Select device by ROM", "draft Table 15"},
	{OpOneWireSkipROM, "ONEWIRE_SKIP_ROM", "Skip ROM (single device)", "draft Table 15"},
	{OpOneWireRead, "ONEWIRE_READ", "Read bytes", "draft Table 15"},
	{OpOneWireWrite, "ONEWIRE_WRITE", "Write bytes", "draft Table 15"},
}

// Ops returns every defined operation in ascending code order. The slice is
// a copy; callers may keep it.
func Ops() []OpInfo { return append([]OpInfo(nil), opTable...) }

// Info returns the description of op and whether op is defined.
func (op Op) Info() (OpInfo, bool) {
	// opTable is sorted by code: binary search, no map, no init.
	lo, hi := 0, len(opTable)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if opTable[m].Op < op {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(opTable) && opTable[lo].Op == op {
		return opTable[lo], true
	}
	return OpInfo{}, false
}

// Known reports whether op is defined by the draft or the profile.
func (op Op) Known() bool { _, ok := op.Info(); return ok }

// String returns the op's name, or "OP_0xNNNN" for an undefined code.
func (op Op) String() string {
	if i, ok := op.Info(); ok {
		return i.Name
	}
	return fmt.Sprintf("OP_0x%04X", uint16(op))
}

// OpByName returns the op with the given name (as String prints it).
func OpByName(name string) (Op, bool) {
	for _, i := range opTable {
		if i.Name == name {
			return i.Op, true
		}
	}
	return 0, false
}

// Range is a category of the operation space (Table 2).
type Range uint8

const (
	RangeCore Range = iota
	RangeStandard
	RangeResourceSharing
	RangeFederation
	RangeBilling
	RangeVFS
	RangeHardware
	RangeUnassigned
	RangeVendor
	RangeReserved
)

var rangeNames = [...]string{"core", "standard", "resource-sharing", "federation",
	"billing", "vfs", "hardware", "unassigned", "vendor", "reserved"}

func (r Range) String() string {
	if int(r) < len(rangeNames) {
		return rangeNames[r]
	}
	return "invalid"
}

// Range classifies op by Table 2.
func (op Op) Range() Range {
	switch {
	case op <= 0x00FF:
		return RangeCore
	case op <= 0x01FF:
		return RangeStandard
	case op <= 0x02FF:
		return RangeResourceSharing
	case op <= 0x03FF:
		return RangeFederation
	case op <= 0x04FF:
		return RangeBilling
	case op <= 0x05FF:
		return RangeVFS
	case op <= 0x06FF:
		return RangeHardware
	case op < 0xF000:
		return RangeUnassigned
	case op < 0xFFFF:
		return RangeVendor
	}
	return RangeReserved
}
