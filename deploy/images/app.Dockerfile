# The demo-app image: one static binary, nothing else. Built by
# deploy/images (classic builder, no base image to pull).
FROM scratch
COPY app /app
USER 65534
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/app","-healthcheck"]
ENTRYPOINT ["/app"]
