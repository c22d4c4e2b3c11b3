"""Pure protocol codecs: AMI, AGI and SMPP, bytes in, typed messages out."""
