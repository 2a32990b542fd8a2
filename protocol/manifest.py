# What firmware images take from protocol/ (read by provisioning/image_build.py, in the manner of
# micropython-lib's manifest.py): every wire and file format runs on both profiles.
package(".", profiles=("linux", "mcu"))
