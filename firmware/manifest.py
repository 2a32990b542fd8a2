# What firmware images take from firmware/ (read by provisioning/image_build.py, in the manner of
# micropython-lib's manifest.py): the whole gate application runs on both profiles.
package(".", profiles=("linux", "mcu"))
