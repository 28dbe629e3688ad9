# Reads a TensorBoard event file the way TensorBoard does, independently of zerorun's writer:
# TFRecord framing with masked CRC-32C (checked with a bitwise CRC here), each record decoded by
# the real protobuf library against tensorboard's Event / Summary / Summary.Value fields.
# Prints "file_version V" and "scalar TAG STEP VALUE" lines; exits 1 on a bad CRC or length.
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool
try:
    from google.protobuf.message_factory import GetMessageClass
except ImportError:  # protobuf < 4.
    from google.protobuf.message_factory import MessageFactory
    GetMessageClass = lambda d: MessageFactory().GetPrototype(d)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def event_class():
    f = descriptor_pb2.FileDescriptorProto(name="event_subset.proto", package="tensorboard",
                                           syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto
    value = f.message_type.add(name="Value")
    value.field.add(name="tag", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    value.field.add(name="simple_value", number=2, type=T.TYPE_FLOAT, label=T.LABEL_OPTIONAL)
    summary = f.message_type.add(name="Summary")
    summary.field.add(name="value", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                      type_name=".tensorboard.Value")
    event = f.message_type.add(name="Event")
    event.field.add(name="wall_time", number=1, type=T.TYPE_DOUBLE, label=T.LABEL_OPTIONAL)
    event.field.add(name="step", number=2, type=T.TYPE_INT64, label=T.LABEL_OPTIONAL)
    event.field.add(name="file_version", number=3, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    event.field.add(name="summary", number=5, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                    type_name=".tensorboard.Summary")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return GetMessageClass(pool.FindMessageTypeByName("tensorboard.Event"))


Event = event_class()
data = open(sys.argv[1], "rb").read()
at = 0
while at < len(data):
    header = data[at:at + 8]
    (length,) = struct.unpack("<Q", header)
    (length_crc,) = struct.unpack("<I", data[at + 8:at + 12])
    if masked(header) != length_crc:
        sys.exit("bad length CRC at byte %d" % at)
    body = data[at + 12:at + 12 + length]
    (body_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
    if len(body) != length or masked(body) != body_crc:
        sys.exit("bad data CRC at byte %d" % at)
    at += 16 + length
    e = Event()
    e.ParseFromString(body)
    if e.wall_time < 1.5e9:
        sys.exit("wall_time %r is not a Unix time" % e.wall_time)
    if e.file_version:
        print("file_version", e.file_version)
    for v in e.summary.value:
        print("scalar", v.tag, e.step, repr(v.simple_value))
