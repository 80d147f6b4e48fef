# Redis from Debian's package, for hosts that cannot pull an image: the
# accessory of SwiftDeploy's several-service tests and examples.
# deploy/images assembles rootfs/ (redis-server, redis-cli, their shared
# libraries) and builds this with the classic builder.
FROM scratch
COPY rootfs/ /
# /data belongs to nobody: a new named volume mounted there starts with
# this directory's owner, so Redis can write its append-only file.
COPY --chown=65534:65534 data /data
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 65534:65534
WORKDIR /data
EXPOSE 6379
# appendonly with fsync on every write: a value Redis acknowledged is on
# the volume, so a kill -9 of the container loses nothing it answered OK
# to. No password and no protected mode: the port is reached only on the
# project's network, by the services that depend on it.
CMD ["redis-server","--bind","0.0.0.0","--protected-mode","no","--dir","/data","--appendonly","yes","--appendfsync","always","--save",""]
