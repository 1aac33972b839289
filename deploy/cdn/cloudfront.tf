# A CloudFront distribution in front of the bucket `feedsvc publish` fills (deploy/cdn/README.md).
# Not applied in CI: an example to adapt (bucket name, prefix, certificate, aliases).

resource "aws_cloudfront_origin_access_control" "feeds" {
  name                              = "feedsvc-feeds"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

data "aws_cloudfront_cache_policy" "origin_headers" {
  name = "UseOriginCacheControlHeaders" # honour feedsvc's Cache-Control; path-only key
}

resource "aws_cloudfront_distribution" "feeds" {
  enabled             = true
  default_root_object = "index.html"

  origin {
    origin_id                = "feeds"
    domain_name              = "example-feeds.s3.amazonaws.com"
    origin_path              = "/site" # publish.url: s3://example-feeds/site
    origin_access_control_id = aws_cloudfront_origin_access_control.feeds.id
  }

  default_cache_behavior {
    target_origin_id       = "feeds"
    viewer_protocol_policy = "redirect-to-https"
    allowed_methods        = ["GET", "HEAD"]
    cached_methods         = ["GET", "HEAD"]
    cache_policy_id        = data.aws_cloudfront_cache_policy.origin_headers.id
    compress               = true # with publish.encoding: identity (the default)
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = true
  }
}
