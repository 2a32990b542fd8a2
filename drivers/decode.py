"""Camera-frame QR decoding on the Linux gate. zxing-cpp is the primary decoder."""

from typing import Any

import zxingcpp


def decode_image(image: Any) -> list[str]:
    """Decode every QR code in `image` (a numpy array, a PIL image, or a file path)."""
    if isinstance(image, str):
        import cv2

        image = cv2.imread(image, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise OSError("cannot read image file")
    qr = zxingcpp.BarcodeFormat.QRCode
    results = zxingcpp.read_barcodes(image, formats=qr)  # type: ignore[arg-type]
    return [r.text for r in results if r.valid]
