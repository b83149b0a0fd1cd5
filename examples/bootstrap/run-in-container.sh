#!/bin/sh
# berth-bootstrap in a container (as NodeReg ran), changing the host: the host's root
# mounted at base.chroot_path (/media/root, the default), the host's UTS namespace so
# sethostname reaches the host (without it only <root>/etc/hostname changes; or set
# hostname.set_kernel: false), the host network for IMDS (hop limit) and etcd.
# CAP_SYS_ADMIN is what sethostname needs; root (the image's user is 65532) is what
# writing the host's files under /media/root needs.
set -eu
exec docker run --rm \
    --user 0 \
    --network host \
    --uts host \
    --cap-add SYS_ADMIN \
    -v /:/media/root \
    -v /etc/berth/bootstrap.yaml:/config.yaml:ro \
    ghcr.io/berth-rs/berth-bootstrap:latest \
    --config /config.yaml --log-format json
