"""The admission webhook's pure part: the AdmissionReview v1 contract (`review`), where a pod
may run (`placement`) and the decisions for NADs and pods (`decide`). No I/O, no ORM: the facts
come from services/admission_facts.py, the door is inventory/webhook.py."""
