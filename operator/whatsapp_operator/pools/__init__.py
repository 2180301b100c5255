"""The sender pools: the resolved config published to each as Secrets, which workers run it
(heartbeats), and the tenant signals workers send back."""
