#!/bin/bash
# Append the evidence data partition to a Raspberry Pi OS disk image.
#
# pi-gen produces a boot (FAT) and a root (ext4) partition. The recorder keeps evidence on a
# third, separate ext4 partition labelled "bodycam-data" (mounted at /var/lib/bodycam), so
# that a full or damaged evidence store can never fill or corrupt the system, and the root
# can be made read-only. This script adds that partition to the *image file*, without root
# privileges or loop devices: the filesystem is made in a separate file and copied in at the
# partition's offset. On the device, bodycam-growdata grows it over the rest of the card.
#
# Usage: add-data-partition.sh IMAGE [SIZE_MIB]   (default 256 MiB; at least 64)
set -euo pipefail

die() { echo "add-data-partition: $*" >&2; exit 1; }

image=${1:?usage: add-data-partition.sh IMAGE [SIZE_MIB]}
size_mib=${2:-256}
label=bodycam-data
align=$((8 * 1024 * 1024))   # pi-gen aligns its partitions to 8 MiB; so do we

[[ -f $image ]] || die "$image: no such image file"
if [[ ! $size_mib =~ ^[0-9]+$ ]] || (( size_mib < 64 )); then
  die "size must be a whole number of MiB, at least 64 (got '$size_mib')"
fi
for tool in sfdisk partx mkfs.ext4 truncate dd; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install fdisk e2fsprogs coreutils)"
done

sfdisk --dump "$image" 2>/dev/null | grep -q '^label: dos' \
  || die "$image: expected an MBR (dos) partition table"
ends=$(partx --noheadings --raw --output END "$image") || die "$image: unreadable partition table"
count=$(wc -l <<<"$ends")
(( count == 2 )) || die "$image: expected exactly the boot and root partitions, found $count"

# Start right after the root partition, rounded up to the alignment.
last_end=$(sort -n <<<"$ends" | tail -n 1)
start=$(( ((last_end + 1) * 512 + align - 1) / align * align ))
size=$(( size_mib * 1024 * 1024 ))

truncate -s $(( start + size )) "$image"
echo "start=$(( start / 512 )), size=$(( size / 512 )), type=83" \
  | sfdisk --quiet --append --no-reread --no-tell-kernel "$image"

fs=$(mktemp "${image}.data.XXXXXX")
trap 'rm -f "$fs"' EXIT
# -m 1: keep 1 % for root to repair a full store; lazy init: the card is formatted once,
# inode tables are zeroed in the background on the device.
mkfs.ext4 -q -F -L "$label" -m 1 -E lazy_itable_init=1,lazy_journal_init=1 "$fs" "${size_mib}M"
dd if="$fs" of="$image" bs=1M seek=$(( start / 1024 / 1024 )) conv=notrunc,fsync status=none
echo "add-data-partition: $image: partition 3 ($label, ext4, ${size_mib} MiB) at byte $start"
