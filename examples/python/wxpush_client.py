#!/usr/bin/env python3
"""A wxpush client in Python (grpcio), from the same .proto files the
services are built from: send a message, queue one, read its status, and
read the machine-readable reason of an error.

    pip install grpcio-tools==1.76.0    # brings grpcio and protobuf
    python3 examples/python/wxpush_client.py 127.0.0.1:50051

The stubs are generated into a temporary directory at start (no generated
code is committed). The test command runs this against `wxpush dev`
(scripts/smoke-grpcurl.sh), so the example is known to work.
"""

import importlib
import pathlib
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

PROTO = pathlib.Path(__file__).resolve().parents[2] / "proto"
FILES = [
    "google/api/field_behavior.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    "wxpush/v1/common.proto",
    "wxpush/v1/delivery.proto",
]


def generate():
    """Python stubs for FILES, importable from a temporary directory."""
    out = tempfile.mkdtemp(prefix="wxpush-py-")
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + FILES) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)
    return (
        importlib.import_module("wxpush.v1.common_pb2"),
        importlib.import_module("wxpush.v1.delivery_pb2"),
        importlib.import_module("wxpush.v1.delivery_pb2_grpc"),
        importlib.import_module("google.rpc.status_pb2"),
        importlib.import_module("google.rpc.error_details_pb2"),
    )


def error_reason(error, status_pb2, details_pb2):
    """The ErrorInfo reason every wxpush error carries (README, "Errors")."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason, dict(info.metadata)
    return None, {}


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
    common_pb2, delivery_pb2, delivery_grpc, status_pb2, details_pb2 = generate()
    stub = delivery_grpc.DeliveryServiceStub(grpc.insecure_channel(target))
    variables = {"order_id": "PY1", "ship_time": "2026-11-23 10:00", "carrier": "顺丰速运"}

    sent = stub.Send(
        delivery_pb2.SendRequest(template_key="order_shipped", openid="o_demo_follower", variables=variables),
        timeout=10,
    )
    if sent.result.status != common_pb2.DELIVERY_STATUS_SENT:
        sys.exit(f"Send did not deliver: {sent}")
    print(f"Send: {sent.result.message_id} status={sent.result.status} trace_id={sent.result.trace_id}")

    queued = stub.SendAsync(
        delivery_pb2.SendAsyncRequest(template_key="order_shipped", openid="o_demo_follower2", variables=variables),
        timeout=10,
    )
    # WeChat took it (SENT), or its receipt already came back (DELIVERED,
    # BLOCKED, UNDELIVERED: the final word on whether the user got it).
    taken = {
        common_pb2.DELIVERY_STATUS_SENT,
        common_pb2.DELIVERY_STATUS_DELIVERED,
        common_pb2.DELIVERY_STATUS_BLOCKED,
        common_pb2.DELIVERY_STATUS_UNDELIVERED,
    }
    for _ in range(100):
        got = stub.GetMessage(delivery_pb2.GetMessageRequest(message_id=queued.message_id), timeout=10)
        if got.result.status in taken:
            break
        time.sleep(0.1)
    else:
        sys.exit(f"the queued message was not delivered: {got}")
    print(f"SendAsync: {queued.message_id} delivered")

    try:
        stub.Send(delivery_pb2.SendRequest(template_key="order_shipped"), timeout=10)
        sys.exit("a Send without openid succeeded")
    except grpc.RpcError as error:
        reason, metadata = error_reason(error, status_pb2, details_pb2)
        if error.code() != grpc.StatusCode.INVALID_ARGUMENT or reason != "FIELD_INVALID":
            sys.exit(f"expected INVALID_ARGUMENT / FIELD_INVALID, got {error.code()} / {reason}")
        print(f"bad Send: {error.code().name} reason={reason}")
    try:
        stub.GetMessage(delivery_pb2.GetMessageRequest(message_id="no-such-message"), timeout=10)
        sys.exit("GetMessage of an unknown id succeeded")
    except grpc.RpcError as error:
        reason, metadata = error_reason(error, status_pb2, details_pb2)
        if reason != "MESSAGE_NOT_FOUND" or metadata.get("message_id") != "no-such-message":
            sys.exit(f"expected MESSAGE_NOT_FOUND naming the id, got {reason} {metadata}")
        print(f"unknown message: {error.code().name} reason={reason}")
    print("python client: ok")


if __name__ == "__main__":
    main()
