# The demo-app image: one static binary, nothing else. Built by
# deploy/images (classic builder, no base image to pull).
FROM scratch
COPY app /app
USER 65534
EXPOSE 3000
# A short interval so deploys see "healthy" within seconds; the probe is
# the app binary itself since the image has no shell or curl.
HEALTHCHECK --interval=3s --timeout=2s --retries=3 CMD ["/app","-healthcheck"]
ENTRYPOINT ["/app"]
