#!/usr/bin/env bash
# Builds every container image the real cluster (issue 13) runs, on this machine, without any
# image registry: podman/buildah with runc, from base images made here by debootstrap.
#
#   integration/images/build.sh [all|base|routelb|frr|pause|http|export|verify]   (default: all)
#
#   base     Debian 12 minbase by debootstrap (mirror read from /etc/apt/sources*), imported as
#            docker.io/library/debian:bookworm-slim; the builder docker.io/library/rust:1-bookworm
#            (that + build-essential + the host's Rust toolchain, see builder/Containerfile).
#            Tagged under docker.io/library/ so that the repository's unchanged Dockerfile
#            resolves `FROM rust:1-bookworm` / `FROM debian:bookworm-slim` locally (--pull=never).
#   routelb  the repository's Dockerfile, unchanged           -> docker.io/library/routelb:0.1.0
#            (the name deploy/base uses: `routelb` + newTag 0.1.0, as the kubelet normalizes it)
#   frr      FRR sidecar from Debian's frr (frr/Containerfile) -> localhost/routelb/frr:bookworm
#   pause    sandbox image, pause/pause.c static              -> localhost/routelb/pause:1.0
#   http     test workload, busybox httpd answering hostname  -> localhost/routelb/http:1.0
#   export   each image as a docker-archive for `ctr -n k8s.io images import`, into
#            ~/.cache/routelb/images/<name>.tar, and ~/.cache/routelb/images/images.env
#   verify   imports each exported image into a private containerd (its own socket and root,
#            no CRI) and runs it with runc: pause starts and stops on SIGTERM, the workload
#            answers on loopback (IPv4, IPv6) inside a netns, routelb prints its version, FRR
#            starts zebra+bgpd. Remembered per image id: an unchanged image is not re-verified.
#   all      all of the above in order.
#
# Idempotent and cached: the rootfs tarball lives in ~/.cache/routelb/images/, built images in
# podman's storage, each labelled with the hash of its inputs (io.routelb.build-key); an image
# whose key is unchanged is not rebuilt, so a re-run with everything cached takes seconds.
# The routelb key hashes Cargo.toml, Cargo.lock, src/, benches/, templates/,
# tests/real_cluster.rs (a declared target the build context must hold), Dockerfile and
# .dockerignore (and the base images' ids): any source change rebuilds it (cargo's target dir
# is a buildah cache mount, kept between builds, so the rebuild is incremental).
#
# Installs what it needs with apt-get, and adds a containers.conf drop-in
# (/etc/containers/containers.conf.d/50-routelb-images.conf: default_ulimits = [], runtime runc,
# cgroupfs/file events without systemd) instead of editing an existing containers.conf.
# Needs root. Logs go to stderr; stdout gets images.env's content at the end of `all`/`export`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${ROUTELB_IMAGES_CACHE:-$HOME/.cache/routelb/images}"

SLIM_IMAGE=docker.io/library/debian:bookworm-slim
BUILDER_IMAGE=docker.io/library/rust:1-bookworm
ROUTELB_IMAGE=docker.io/library/routelb:0.1.0
FRR_IMAGE=localhost/routelb/frr:bookworm
PAUSE_IMAGE=localhost/routelb/pause:1.0
HTTP_IMAGE=localhost/routelb/http:1.0
HTTP_PORT=8080

ROOTFS_TAR="$CACHE/debian-bookworm-minbase.tar"
KEY_LABEL=io.routelb.build-key
PREFIX=img   # netns, containerd and container names made by `verify`

log() { echo "images: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
mkdir -p "$CACHE"

# --- host setup ---------------------------------------------------------------------------
ensure_packages() {
	local missing=() p
	for p in podman buildah debootstrap containerd runc uidmap curl iproute2; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		log "apt-get install ${missing[*]}"
		# runc named explicitly: otherwise podman's "crun | runc" pulls crun, which refuses
		# hybrid cgroup v1 hosts.
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
			|| { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
	fi
}

ensure_containers_conf() {
	local dropin=/etc/containers/containers.conf.d/50-routelb-images.conf want
	# default_ulimits = []: podman's default nofile/nproc ulimits need CAP_SYS_RESOURCE when
	# they exceed the host's hard limits. runc: crun refuses hybrid cgroup v1.
	want="# Written by routelb integration/images/build.sh.
[containers]
default_ulimits = []
[engine]
runtime = \"runc\""
	if [ ! -d /run/systemd/system ]; then
		want="$want
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""
	fi
	if [ "$(cat "$dropin" 2>/dev/null)" != "$want" ]; then
		log "writing $dropin"
		mkdir -p "$(dirname "$dropin")"
		printf '%s\n' "$want" >"$dropin"
	fi
}

# The Debian mirror apt uses here (deb822 .sources or one-line .list), for a suite: first URI.
apt_mirror() {
	local suite="$1" f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		uri="$(awk -v suite="$suite" '
			BEGIN { RS = ""; FS = "\n" }
			{
				types = ""; uris = ""; suites = ""
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^Types:/)  { types = $i }
					if ($i ~ /^URIs:/)   { uris = $i }
					if ($i ~ /^Suites:/) { suites = $i }
				}
				if (types ~ /[ \t]deb([ \t]|$)/ && (suites " ") ~ ("[ \t]" suite "[ \t]")) {
					sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/); print u[1]; exit
				}
			}' "$f")"
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		uri="$(awk -v suite="$suite" '
			$1 == "deb" {
				i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == suite) { print $i; exit }
			}' "$f")"
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
}

image_exists() { podman image exists "$1"; }
image_id() { podman image inspect --format '{{.Id}}' "$1"; }
image_key() { podman image inspect --format "{{index .Labels \"$KEY_LABEL\"}}" "$1" 2>/dev/null || true; }
hash_stdin() { sha256sum | cut -c1-32; }
hash_files() { (cd "$1" && shift && find "$@" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | hash_stdin; }

# build_image REF KEY CONTEXT CONTAINERFILE: podman build unless REF exists with label KEY.
build_image() {
	local ref="$1" key="$2" context="$3" file="$4" t0 old
	if image_exists "$ref" && [ "$(image_key "$ref")" = "$key" ]; then
		log "$ref: up to date (key $key)"
		return
	fi
	old="$(image_id "$ref" 2>/dev/null || true)"
	log "$ref: building from $file"
	t0=$(date +%s)
	# --network=host: RUN steps reach the Debian mirror and crates.io without a CNI network.
	podman build --pull=never --network=host --layers \
		--label "$KEY_LABEL=$key" -t "$ref" -f "$file" "$context" >&2
	log "$ref: built in $(( $(date +%s) - t0 )) s, $(podman image inspect --format '{{.Size}}' "$ref") bytes"
	# The image it replaces, unless other images still build on it.
	if [ -n "$old" ] && [ "$old" != "$(image_id "$ref")" ]; then
		podman rmi "$old" >/dev/null 2>&1 || true
	fi
}

# --- base images ----------------------------------------------------------------------------
make_rootfs() {
	local mirror security rootfs="$CACHE/rootfs.tmp" t0
	[ -s "$ROOTFS_TAR" ] && return
	mirror="$(apt_mirror bookworm)"
	security="$(apt_mirror bookworm-security)"
	[ -n "$mirror" ] || die "no Debian bookworm mirror found in /etc/apt/sources.list*"
	log "debootstrap --variant=minbase bookworm from $mirror"
	t0=$(date +%s)
	rm -rf "$rootfs"
	debootstrap --variant=minbase --arch=amd64 bookworm "$rootfs" "$mirror" >&2
	# apt inside the image: the same mirrors as this host's (security updates included).
	rm -f "$rootfs/etc/apt/sources.list"
	{
		printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
		printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
		if [ -n "$security" ]; then
			printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$security"
			printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
		fi
	} >"$rootfs/etc/apt/sources.list.d/debian.sources"
	# Slim, as the official image: no docs, manuals or translations from later installs either
	# (copyright files kept), no package lists or downloaded packages, no recommends.
	cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<-'EOF'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*
		path-exclude /usr/share/lintian/*
	EOF
	printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/90slim"
	printf 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\n' \
		>"$rootfs/etc/apt/apt.conf.d/90clean"
	find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/lib/apt/lists/* \
		"$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
		"$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/root/.bash_history
	: >"$rootfs/etc/hostname"
	rm -f "$rootfs/etc/resolv.conf"
	tar --numeric-owner --xattrs -C "$rootfs" -cf "$ROOTFS_TAR.tmp" .
	mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
	sha256sum "$ROOTFS_TAR" | cut -c1-32 >"$ROOTFS_TAR.sha256"
	rm -rf "$rootfs"
	log "rootfs: $(du -h "$ROOTFS_TAR" | cut -f1) in $(( $(date +%s) - t0 )) s"
}

build_base() {
	local key sysroot ctx
	make_rootfs
	key="rootfs-$(cat "$ROOTFS_TAR.sha256")"
	if image_exists "$SLIM_IMAGE" && [ "$(image_key "$SLIM_IMAGE")" = "$key" ]; then
		log "$SLIM_IMAGE: up to date"
	else
		log "$SLIM_IMAGE: podman import $ROOTFS_TAR"
		podman import \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change "LABEL $KEY_LABEL=$key" \
			--change 'CMD ["bash"]' \
			"$ROOTFS_TAR" "$SLIM_IMAGE" >&2
	fi

	# The builder: the host's Rust toolchain (the one `rustc` here resolves to).
	command -v rustc >/dev/null || die "no rustc on PATH (the builder copies the host's toolchain)"
	sysroot="$(rustc --print sysroot)"
	key="$( { image_id "$SLIM_IMAGE"; rustc -vV; cargo -V; cat "$HERE/builder/Containerfile";
		cat /usr/local/share/ca-certificates/* 2>/dev/null || true; } | hash_stdin)"
	if image_exists "$BUILDER_IMAGE" && [ "$(image_key "$BUILDER_IMAGE")" = "$key" ]; then
		log "$BUILDER_IMAGE: up to date"
		return
	fi
	# Context: the sysroot without its 800 MB of HTML docs, as hard links (no copy) when the
	# cache shares the toolchain's filesystem; and the CAs this host added locally (a
	# TLS-inspecting proxy between here and crates.io is then trusted inside the build too).
	ctx="$CACHE/builder-context"
	rm -rf "$ctx"
	mkdir -p "$ctx/toolchain" "$ctx/local-ca"
	cp -al "$sysroot/." "$ctx/toolchain/" 2>/dev/null \
		|| { rm -rf "$ctx/toolchain"; mkdir -p "$ctx/toolchain"; cp -a "$sysroot/." "$ctx/toolchain/"; }
	rm -rf "$ctx/toolchain/share/doc"
	if [ -d /usr/local/share/ca-certificates ]; then
		cp -rL /usr/local/share/ca-certificates/. "$ctx/local-ca/"
	fi
	touch "$ctx/local-ca/.keep"
	build_image "$BUILDER_IMAGE" "$key" "$ctx" "$HERE/builder/Containerfile"
	rm -rf "$ctx"
}

need_base() {
	image_exists "$SLIM_IMAGE" && image_exists "$BUILDER_IMAGE" || build_base
}

# --- the images -----------------------------------------------------------------------------
build_routelb() {
	local key
	need_base
	key="$( { image_id "$SLIM_IMAGE"; image_id "$BUILDER_IMAGE";
		hash_files "$REPO" Cargo.toml Cargo.lock src benches templates Dockerfile .dockerignore tests/real_cluster.rs; } | hash_stdin)"
	build_image "$ROUTELB_IMAGE" "$key" "$REPO" "$REPO/Dockerfile"
}

build_frr() {
	local key
	need_base
	key="$( { image_id "$SLIM_IMAGE"; hash_files "$HERE/frr" .; } | hash_stdin)"
	build_image "$FRR_IMAGE" "$key" "$HERE/frr" "$HERE/frr/Containerfile"
}

build_pause() {
	local key
	need_base
	key="$( { image_id "$BUILDER_IMAGE"; hash_files "$HERE/pause" .; } | hash_stdin)"
	build_image "$PAUSE_IMAGE" "$key" "$HERE/pause" "$HERE/pause/Containerfile"
}

build_http() {
	local key
	need_base
	key="$( { image_id "$SLIM_IMAGE"; hash_files "$HERE/http" .; } | hash_stdin)"
	build_image "$HTTP_IMAGE" "$key" "$HERE/http" "$HERE/http/Containerfile"
}

# --- export -----------------------------------------------------------------------------------
NAMES=(routelb frr pause http)
ref_of() {
	case "$1" in
	routelb) echo "$ROUTELB_IMAGE" ;; frr) echo "$FRR_IMAGE" ;;
	pause) echo "$PAUSE_IMAGE" ;; http) echo "$HTTP_IMAGE" ;;
	esac
}

export_images() {
	local name ref id tar
	for name in "${NAMES[@]}"; do
		ref="$(ref_of "$name")"
		image_exists "$ref" || die "$ref not built: run $0 $name"
		id="$(image_id "$ref")"
		tar="$CACHE/$name.tar"
		if [ -s "$tar" ] && [ "$(cat "$tar.id" 2>/dev/null)" = "$id" ]; then
			continue
		fi
		log "podman save $ref -> $tar"
		rm -f "$tar.tmp"
		# docker-archive keeps the full name in manifest.json's RepoTags, which
		# `ctr images import` uses as the image name (an oci-archive keeps only the tag).
		podman save --format docker-archive -o "$tar.tmp" "$ref" >&2
		mv "$tar.tmp" "$tar"
		echo "$id" >"$tar.id"
	done
	{
		echo "# Written by integration/images/build.sh: images for the real cluster, and their"
		echo "# docker-archives for: ctr -n k8s.io images import <tar>"
		echo "ROUTELB_IMAGE=$ROUTELB_IMAGE"
		echo "FRR_IMAGE=$FRR_IMAGE"
		echo "PAUSE_IMAGE=$PAUSE_IMAGE"
		echo "HTTP_IMAGE=$HTTP_IMAGE"
		echo "HTTP_PORT=$HTTP_PORT"
		echo "# FRR image: frr uid 100 gid 101, frrvty gid 102 (vty sockets frr:frrvty 0770)."
		echo "FRR_VTY_GID=102"
		echo "# containerd (CRI): [plugins.\"io.containerd.grpc.v1.cri\"] sandbox_image = \$PAUSE_IMAGE"
		for name in "${NAMES[@]}"; do
			echo "$(echo "$name" | tr a-z A-Z)_TAR=$CACHE/$name.tar"
		done
	} >"$CACHE/images.env.tmp"
	mv "$CACHE/images.env.tmp" "$CACHE/images.env"
}

# --- verify with containerd (ctr) and runc -----------------------------------------------------
CTRD_DIR=/run/$PREFIX-containerd
CTRD_ROOT=/var/lib/$PREFIX-containerd
CTRD_SOCK=$CTRD_DIR/containerd.sock
CTRD_PID=""
VERIFY_TMP=""

ctr_() { ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"; }

containerd_up() {
	mkdir -p "$CTRD_DIR"
	cat >"$CTRD_DIR/config.toml" <<-EOF
		version = 2
		root = "$CTRD_ROOT"
		state = "$CTRD_DIR/state"
		disabled_plugins = ["io.containerd.grpc.v1.cri"]
		[grpc]
		  address = "$CTRD_SOCK"
		[ttrpc]
		  address = "$CTRD_DIR/containerd.sock.ttrpc"
	EOF
	containerd --config "$CTRD_DIR/config.toml" >"$CTRD_DIR/containerd.log" 2>&1 &
	CTRD_PID=$!
	local i
	for i in $(seq 100); do
		ctr --address "$CTRD_SOCK" version >/dev/null 2>&1 && return
		kill -0 "$CTRD_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$CTRD_DIR/containerd.log" >&2
	die "containerd did not start"
}

verify_cleanup() {
	local c
	if [ -n "$CTRD_PID" ]; then
		for c in $(ctr_ task ls -q 2>/dev/null); do ctr_ task kill -s SIGKILL "$c" 2>/dev/null || true; done
		sleep 0.3
		for c in $(ctr_ task ls -q 2>/dev/null); do ctr_ task rm -f "$c" >/dev/null 2>&1 || true; done
		for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$c" >/dev/null 2>&1 || true; done
		kill "$CTRD_PID" 2>/dev/null || true
		wait "$CTRD_PID" 2>/dev/null || true
		CTRD_PID=""
	fi
	ip netns del "$PREFIX-http" 2>/dev/null || true
	ip netns del "$PREFIX-frr" 2>/dev/null || true
	findmnt -rn -o TARGET | grep -E "^($CTRD_ROOT|$CTRD_DIR)/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$CTRD_ROOT" "$CTRD_DIR"
	[ -n "$VERIFY_TMP" ] && rm -rf "$VERIFY_TMP"
	VERIFY_TMP=""
}

wait_for() { # wait_for SECONDS CMD...: until CMD succeeds
	local deadline=$(( $(date +%s) + $1 )); shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

verify_pause() {
	ctr_ run -d "$PAUSE_IMAGE" "$PREFIX-pause" >/dev/null
	sleep 0.5
	ctr_ task ls | grep -qE "^$PREFIX-pause +[0-9]+ +RUNNING" || die "pause is not running"
	ctr_ task kill -s SIGTERM "$PREFIX-pause"
	wait_for 5 sh -c "ctr --address '$CTRD_SOCK' -n k8s.io task ls | grep -qE '^$PREFIX-pause +[0-9]+ +STOPPED'" \
		|| die "pause did not stop on SIGTERM"
	ctr_ task rm "$PREFIX-pause" >/dev/null
	ctr_ containers rm "$PREFIX-pause"
	log "  pause: runs, exits on SIGTERM"
}

verify_http() {
	local ns="$PREFIX-http" want got4 got6
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	want="$(hostname)" # ctr has no --hostname: the container keeps the UTS name it starts with
	ctr_ run -d --with-ns "network:/var/run/netns/$ns" "$HTTP_IMAGE" "$PREFIX-http" >/dev/null
	wait_for 10 ip netns exec "$ns" curl -sf "http://127.0.0.1:$HTTP_PORT/" || die "workload does not answer"
	got4="$(ip netns exec "$ns" curl -sf "http://127.0.0.1:$HTTP_PORT/")"
	got6="$(ip netns exec "$ns" curl -sf "http://[::1]:$HTTP_PORT/")"
	[ "$got4" = "$want" ] && [ "$got6" = "$want" ] || die "workload answered '$got4' / '$got6', want '$want'"
	ctr_ task kill -s SIGKILL "$PREFIX-http"
	wait_for 5 sh -c "ctr --address '$CTRD_SOCK' -n k8s.io task ls | grep -qE '^$PREFIX-http +[0-9]+ +STOPPED'" || true
	ctr_ task rm -f "$PREFIX-http" >/dev/null
	ctr_ containers rm "$PREFIX-http"
	ip netns del "$ns"
	log "  http: GET / answers '$got4' on 127.0.0.1 and ::1 port $HTTP_PORT"
}

verify_routelb() {
	local out
	out="$(ctr_ run --rm "$ROUTELB_IMAGE" "$PREFIX-routelb" routelb --version)" || die "routelb --version failed"
	log "  routelb: $out (uid $(ctr_ run --rm "$ROUTELB_IMAGE" "$PREFIX-routelb" /usr/bin/id -u))"
	out="$(ctr_ run --rm "$ROUTELB_IMAGE" "$PREFIX-routelb" dpkg-query -W -f '${Package} ${Version}\n' frr bird2)"
	log "  routelb image clients: $(echo "$out" | xargs)"
}

verify_frr() {
	local ns="$PREFIX-frr" etc="$VERIFY_TMP/frr-etc" run="$VERIFY_TMP/frr-run" out agent
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add 10.255.0.1/32 dev lo
	mkdir -p "$etc" "$run"
	chmod 0777 "$etc" "$run" # as an emptyDir
	printf 'bgpd=yes\nvtysh_enable=yes\nzebra_options="-P 0"\nstaticd_options="-P 0"\nbgpd_options="-P 0"\n' >"$etc/daemons"
	printf 'frr defaults traditional\nlog file /etc/frr/frr.log informational\n!\nrouter bgp 64512\n bgp router-id 10.255.0.1\n!\n' >"$etc/frr.conf"
	printf 'service integrated-vtysh-config\n' >"$etc/vtysh.conf"
	# As deploy/overlays/frr-sidecar runs it, with its capabilities.
	ctr_ run -d --with-ns "network:/var/run/netns/$ns" \
		--cap-add CAP_NET_ADMIN --cap-add CAP_NET_RAW --cap-add CAP_NET_BIND_SERVICE --cap-add CAP_SYS_ADMIN \
		--mount "type=bind,src=$etc,dst=/etc/frr,options=rbind:rw" \
		--mount "type=bind,src=$run,dst=/var/run/frr,options=rbind:rw" \
		"$FRR_IMAGE" "$PREFIX-frr" /sbin/tini -- /bin/sh -c \
		'/usr/lib/frr/docker-start & exec tail -F /etc/frr/frr.log' >/dev/null
	wait_for 20 sh -c "ctr --address '$CTRD_SOCK' -n k8s.io task exec --exec-id chk $PREFIX-frr vtysh -c 'show running-config' | grep -q '^router bgp 64512'" \
		|| { ctr_ task exec --exec-id dbg "$PREFIX-frr" sh -c 'ls -l /var/run/frr; cat /etc/frr/frr.log' >&2 || true; die "FRR: bgpd does not answer"; }
	out="$(ctr_ task exec --exec-id chk2 "$PREFIX-frr" vtysh -c 'show daemons')"
	echo "$out" | grep -q zebra && echo "$out" | grep -q bgpd || die "FRR daemons: $out"
	ls "$run" | grep -q 'bgpd.vty' || die "no vty socket in the shared /var/run/frr"
	# The agent's side of the overlay: the routelb image's vtysh (as root, the agent's user
	# there) reaches FRR's daemons through the shared socket directory.
	ctr_ images ls -q | grep -qx "$ROUTELB_IMAGE" || ctr_ images import "$CACHE/routelb.tar" >&2
	ctr_ run -d --mount "type=bind,src=$run,dst=/var/run/frr,options=rbind:rw" \
		"$ROUTELB_IMAGE" "$PREFIX-agent" sleep 60 >/dev/null
	agent="$(ctr_ task exec --user 0 --exec-id vty "$PREFIX-agent" vtysh -c 'show daemons')" \
		|| die "routelb image's vtysh does not reach FRR: $agent"
	echo "$agent" | grep -q bgpd || die "routelb image's vtysh: $agent"
	ctr_ task kill -s SIGKILL "$PREFIX-agent"
	wait_for 5 sh -c "ctr --address '$CTRD_SOCK' -n k8s.io task ls | grep -qE '^$PREFIX-agent +[0-9]+ +STOPPED'" || true
	ctr_ task rm -f "$PREFIX-agent" >/dev/null
	ctr_ containers rm "$PREFIX-agent"
	ctr_ task kill -s SIGTERM "$PREFIX-frr"
	wait_for 10 sh -c "ctr --address '$CTRD_SOCK' -n k8s.io task ls | grep -qE '^$PREFIX-frr +[0-9]+ +STOPPED'" || true
	ctr_ task rm -f "$PREFIX-frr" >/dev/null
	ctr_ containers rm "$PREFIX-frr"
	ip netns del "$ns"
	log "  frr: daemons '$(echo "$out" | xargs)', bgpd has router bgp 64512; the routelb image's vtysh reaches them through the shared socket dir"
}

verify_images() {
	local name ref id todo=() t0
	for name in "${NAMES[@]}"; do
		ref="$(ref_of "$name")"
		[ -s "$CACHE/$name.tar" ] || die "$CACHE/$name.tar missing: run $0 export"
		id="$(cat "$CACHE/$name.tar.id")"
		[ "$(cat "$CACHE/$name.verified" 2>/dev/null)" = "$id" ] || todo+=("$name")
	done
	if [ "${#todo[@]}" = 0 ]; then
		log "verify: every image verified already"
		return
	fi
	t0=$(date +%s)
	trap verify_cleanup EXIT
	verify_cleanup
	VERIFY_TMP="$(mktemp -d /tmp/$PREFIX-verify.XXXXXX)"
	containerd_up
	log "verify with containerd $(containerd --version | awk '{print $3}') and runc: ${todo[*]}"
	for name in "${todo[@]}"; do
		log "  ctr -n k8s.io images import $CACHE/$name.tar"
		ctr_ images import "$CACHE/$name.tar" >&2
		ctr_ images ls -q | grep -qx "$(ref_of "$name")" || die "$(ref_of "$name") not found after import"
		"verify_$name"
		cat "$CACHE/$name.tar.id" >"$CACHE/$name.verified"
	done
	verify_cleanup
	trap - EXIT
	log "verify: done in $(( $(date +%s) - t0 )) s"
}

# --- main -----------------------------------------------------------------------------------
what="${1:-all}"
T0=$(date +%s)
case "$what" in
all | base | routelb | frr | pause | http | export | verify) ;;
*) die "usage: $0 [all|base|routelb|frr|pause|http|export|verify]" ;;
esac
ensure_packages
ensure_containers_conf
case "$what" in
base) build_base ;;
routelb) build_routelb ;;
frr) build_frr ;;
pause) build_pause ;;
http) build_http ;;
export) export_images; cat "$CACHE/images.env" ;;
verify) verify_images ;;
all)
	build_base
	build_routelb
	build_frr
	build_pause
	build_http
	export_images
	verify_images
	cat "$CACHE/images.env"
	;;
esac
log "$what: done in $(( $(date +%s) - T0 )) s"
