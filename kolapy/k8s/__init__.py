"""Kubernetes on kolapy machines: NestOS's Ignition recipe and locally built node binaries."""
