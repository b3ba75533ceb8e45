#!/bin/bash -e
# Host side of the bodycam stage: copy the recorder's files into the root filesystem and
# install the agent into its own virtual environment.
#
# The venv uses --system-site-packages so that libcamera's bindings, picamera2, PyAudio and
# lgpio (distribution packages) are importable; everything else comes from the agent wheel
# that image-build/build.sh placed in files/wheels/ and from PyPI.

install -d -m 755 "${ROOTFS_DIR}/usr/lib/bodycam" "${ROOTFS_DIR}/usr/share/bodycam" \
	"${ROOTFS_DIR}/usr/share/doc/bodycam" "${ROOTFS_DIR}/etc/bodycam" \
	"${ROOTFS_DIR}/etc/systemd/journald.conf.d" "${ROOTFS_DIR}/opt/bodycam/wheels"

install -m 644 files/bodycam.service files/bodycam-provision.service \
	files/bodycam-growdata.service files/bodycam-enrol.service "${ROOTFS_DIR}/etc/systemd/system/"
install -m 755 files/bodycam-provision files/bodycam-growdata files/bodycam-enrol \
	"${ROOTFS_DIR}/usr/lib/bodycam/"
install -m 644 files/bodycam.toml.in "${ROOTFS_DIR}/usr/share/bodycam/"
install -m 644 files/journald-bodycam.conf "${ROOTFS_DIR}/etc/systemd/journald.conf.d/bodycam.conf"
install -D -m 644 files/modules-load-bodycam.conf "${ROOTFS_DIR}/etc/modules-load.d/bodycam.conf"
if [ -f files/README.md ]; then
	install -m 644 files/README.md "${ROOTFS_DIR}/usr/share/doc/bodycam/"
fi
if [ -f files/readonly-root ]; then
	install -m 644 files/readonly-root "${ROOTFS_DIR}/etc/bodycam/readonly-root"
fi

# The fuel-gauge overlay chosen at build time (build.sh --fuel-gauge; none without it).
fuel_gauge=none
if [ -f files/fuel-gauge ]; then
	fuel_gauge=$(cat files/fuel-gauge)
fi
./boot-config.sh "${ROOTFS_DIR}/boot/firmware" "${fuel_gauge}"

shopt -s nullglob
wheels=(files/wheels/bodycam_agent-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
	echo "bodycam stage: expected exactly one agent wheel in files/wheels/, found ${#wheels[@]}" >&2
	echo "bodycam stage: build the image with image-build/build.sh, which puts it there" >&2
	exit 1
fi
install -m 644 "${wheels[0]}" "${ROOTFS_DIR}/opt/bodycam/wheels/"
wheel_name=$(basename "${wheels[0]}")

on_chroot <<EOF_CHROOT
set -e
python3 -m venv --system-site-packages /opt/bodycam/venv
# Keep the distribution's numpy: picamera2 and simplejpeg are built against its ABI.
numpy_version=\$(python3 -c 'import numpy; print(numpy.__version__)')
echo "numpy==\${numpy_version}" > /opt/bodycam/constraints.txt
/opt/bodycam/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
	--constraint /opt/bodycam/constraints.txt \
	"/opt/bodycam/wheels/${wheel_name}[pi]"
/opt/bodycam/venv/bin/bodycam --help >/dev/null
# The camera stack must be the distribution's (built against its libcamera), and new enough:
# 0.3.20 for the bounded still wait, 0.3.26 for the V4L2 encoder fix (pyproject's [pi] extra).
/opt/bodycam/venv/bin/python - <<'EOF_PY'
import sys
from importlib.metadata import distribution
dist = distribution("picamera2")
version = tuple(int(p) for p in dist.version.split(".")[:3] if p.isdigit())
where = str(dist.locate_file(""))
if version < (0, 3, 26) or not where.startswith("/usr/lib/python3/"):
    sys.exit(f"bodycam stage: picamera2 {dist.version} from {where}: need >= 0.3.26 from "
             "python3-picamera2 (apt), not a copy from PyPI")
print(f"bodycam stage: picamera2 {dist.version} from {where}")
EOF_PY
/opt/bodycam/venv/bin/pip freeze --all > /usr/share/doc/bodycam/venv-freeze.txt
# The maintenance account has no usable password: SSH with the key given at build time
# (image-build/build.sh --ssh-key) is the only way in, and without a key there is none.
passwd --lock "${FIRST_USER_NAME}"
EOF_CHROOT
