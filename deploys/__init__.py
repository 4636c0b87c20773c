"""pyinfra deploys: laptop (main), fleet, mirror, wear, wsl2."""
