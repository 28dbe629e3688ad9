"""pip install of the zerorun Python package from a build tree (build/python, made by the CMake
target zr_python: the sources here plus the protobuf modules generated from proto/). Also puts
zerorun_auto.pth into site-packages (ZERORUN_AUTO_CALLBACKS=1 support)."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithPth(build_py):
    def run(self):
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        self.copy_file(os.path.join(here, "zerorun_auto.pth"),
                       os.path.join(self.build_lib, "zerorun_auto.pth"))


setup(
    name="zerorun",
    version=os.environ.get("ZR_VERSION", "0.1.0"),
    description="Live status from Python trainers (HF Trainer, Lightning, DeepSpeed) to zerorun",
    packages=["zerorun", "zerorun.v1"],
    python_requires=">=3.9",
    install_requires=["grpcio", "protobuf"],
    cmdclass={"build_py": BuildWithPth},
)
