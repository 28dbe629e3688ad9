"""pip install of the zerorun Python package, from the source tree (`pip install ./python`) or
from a build tree (build/python, made by the CMake target zr_python). The protobuf module
zerorun/v1/coordinator_pb2.py is generated from proto/ with protoc (Debian's
protobuf-compiler, or grpcio-tools when installed) unless the tree already holds it. Also puts
zerorun_auto.pth into site-packages (ZERORUN_AUTO_CALLBACKS=1 support)."""

import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join("zerorun", "v1", "coordinator.proto")


def _protoc(proto_root, out):
    """Runs protoc for PROTO under proto_root into out; an error names what is missing."""
    args = ["-I", proto_root, "--python_out=" + out, os.path.join(proto_root, PROTO)]
    if shutil.which("protoc"):
        subprocess.check_call(["protoc"] + args)
        return
    try:
        from grpc_tools import protoc
    except ImportError:
        sys.exit("zerorun setup.py: no protoc to generate zerorun/v1/coordinator_pb2.py: install "
                 "Debian's protobuf-compiler (apt-get install protobuf-compiler) or grpcio-tools")
    if protoc.main(["protoc"] + args) != 0:
        sys.exit("zerorun setup.py: protoc failed on " + os.path.join(proto_root, PROTO))


class BuildPackage(build_py):
    def run(self):
        super().run()
        if not os.path.exists(os.path.join(HERE, "zerorun", "v1", "coordinator_pb2.py")):
            proto_root = os.path.join(HERE, "..", "proto")
            if not os.path.exists(os.path.join(proto_root, PROTO)):
                sys.exit("zerorun setup.py: " + os.path.join(proto_root, PROTO) + " is missing: "
                         "install from a zerorun source tree (pip install ./python) or a build "
                         "tree (pip install build/python)")
            os.makedirs(os.path.join(self.build_lib, "zerorun", "v1"), exist_ok=True)
            _protoc(proto_root, self.build_lib)
            open(os.path.join(self.build_lib, "zerorun", "v1", "__init__.py"), "a").close()
        self.copy_file(os.path.join(HERE, "zerorun_auto.pth"),
                       os.path.join(self.build_lib, "zerorun_auto.pth"))


setup(
    name="zerorun",
    version=os.environ.get("ZR_VERSION", "0.1.0"),
    description="Live status from Python trainers (HF Trainer, Lightning, DeepSpeed) to zerorun",
    packages=["zerorun", "zerorun.torch"] + (
        ["zerorun.v1"] if os.path.isdir(os.path.join(HERE, "zerorun", "v1")) else []),
    # zerorun.torch's compiled module, where the build tree has it (the CMake target
    # zr_torch_ext puts it into build/python/zerorun).
    # zerorun --engine zerorun's `deepspeed` (a directory put on PYTHONPATH by
    # zerorun.engine_run, not a package of zerorun's).
    package_data={"zerorun": ["_zerorun*.so", "libzerorun_torch.so", "compat/deepspeed/*.py",
                              "compat/deepspeed/*/*.py", "compat/deepspeed/*/*/*.py",
                              "compat/*.dist-info/*"]},
    python_requires=">=3.9",
    install_requires=["grpcio", "protobuf"],
    cmdclass={"build_py": BuildPackage},
)
