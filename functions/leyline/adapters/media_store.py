"""S3 access for uploads and videos: presigned URLs and the objects themselves."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from leyline.models import PresignedPost, StoredObject


class MediaStore:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self._bucket = bucket
        # SigV4 everywhere: presigned URLs then carry X-Amz-Expires, which S3 caps at 7 days.
        self._s3 = client or boto3.client("s3", config=Config(signature_version="s3v4"))

    def presigned_upload(self, key: str, *, content_type: str | None, max_bytes: int, expires_in: int) -> PresignedPost:
        """A POST policy pinning the key, the size range and the content type (exact when declared)."""
        fields: dict[str, str] = {}
        conditions: list[Any] = [["content-length-range", 1, max_bytes]]
        if content_type:
            fields["Content-Type"] = content_type
            conditions.append({"Content-Type": content_type})
        else:
            conditions.append(["starts-with", "$Content-Type", "image/"])
        post = self._s3.generate_presigned_post(
            Bucket=self._bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
        )
        return PresignedPost(url=post["url"], fields=dict(post["fields"]))

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)

    def head(self, key: str) -> StoredObject | None:
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=key)
        except self._s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return StoredObject(size=int(head["ContentLength"]), content_type=head.get("ContentType", ""))

    def read(self, key: str) -> bytes:
        body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"]
        return bytes(body.read())

    def delete(self, key: str) -> None:
        """S3 answers a delete of a missing key with success too."""
        self._s3.delete_object(Bucket=self._bucket, Key=key)

    def presigned_download(self, key: str, *, expires_in: int, filename: str, attachment: bool = False) -> str:
        """A GET that plays in the page (inline) or, with `attachment`, makes the browser save the file."""
        disposition = "attachment" if attachment else "inline"
        return str(
            self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentType": "video/mp4",
                    "ResponseContentDisposition": f'{disposition}; filename="{filename}"',
                },
                ExpiresIn=expires_in,
            )
        )

    def browser_origins(self) -> tuple[str, ...]:
        """The origins a browser reaches for presigned uploads and downloads (the page's CSP allows them):
        the bucket's S3 host on AWS, the moto server locally. Presigning is local: no request is made."""
        urls = (
            self._s3.generate_presigned_post(Bucket=self._bucket, Key="uploads/origin", ExpiresIn=60)["url"],
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": "videos/origin.mp4"}, ExpiresIn=60
            ),
        )
        return tuple(dict.fromkeys(f"{part.scheme}://{part.netloc}" for part in map(urlsplit, urls)))
