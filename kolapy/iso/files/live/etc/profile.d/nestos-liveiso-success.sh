# Live ISO without an Ignition config: the console logged in by itself.  Tell the
# host, as NestOS's live ISO does (testiso's iso-live-login waits for this).
if [ -w /dev/virtio-ports/nestos.liveiso-success ]; then
    echo nestos-liveiso-success > /dev/virtio-ports/nestos.liveiso-success 2>/dev/null || :
fi
