#!/bin/sh
echo "app $(cat /opt/app/VERSION)"
