# nginx from Debian's package, for hosts that cannot pull the official image.
# deploy/images assembles rootfs/ (binary, its shared libraries, the few
# files nginx needs) and builds this with the classic builder.
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
STOPSIGNAL SIGQUIT
CMD ["nginx","-g","daemon off;"]
