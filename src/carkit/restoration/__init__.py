"""Restoration: the plan (which model for which file), the pixel path
(``restorer``), the DCT-coefficient path (``kspace``) and any codec followed
by a restorer (``codec``). Named so that ``carkit.restore`` stays the API verb."""
